"""Time per round spent outside the models: events, image handling, parsing, reward, bookkeeping.

    python bench/loop_overhead.py --rounds 20 --candidates 2

Uses the tiny preset (offline). The generator's and critic's own calls are timed by wrapping them;
the loop's overhead is the rest of each round's wall time. Target: under 20 ms per round on the
2-core CI machine. Prints one table; not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rr_core.loop import LoopConfig, RoundDone, RoundStarted  # noqa: E402
from rr_core.presets import Studio, resolve_preset  # noqa: E402
from rr_core.rubric import Task  # noqa: E402


class Timed:
    """Wraps an object and adds the wall time of the named methods (including iteration) to a counter."""

    def __init__(self, inner, methods: tuple[str, ...]) -> None:
        self.inner, self.methods, self.seconds = inner, methods, 0.0

    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if name not in self.methods:
            return attribute

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = attribute(*args, **kwargs)
            if hasattr(result, "__next__"):
                self.seconds += time.perf_counter() - start
                return self._timed_iter(result)
            self.seconds += time.perf_counter() - start
            return result
        return timed

    def _timed_iter(self, iterator):
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield item


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    studio = Studio(resolve_preset("tiny"))
    loop = studio.loop(Task.T2I)
    generator = Timed(loop.generator, ("generate",))
    critic = Timed(loop.critic, ("critique_many", "stream"))
    loop.generator, loop.critic = generator, critic
    config = LoopConfig(rounds=1, candidates=args.candidates, stop_threshold=None, steps=args.steps, max_retries=0)

    list(loop.run("warm-up prompt", config))  # first call pays one-off costs (allocations, caches)
    totals, overheads, model = [], [], []
    for i in range(args.rounds):
        generator.seconds = critic.seconds = 0.0
        start = time.perf_counter()
        for event in loop.run(f"a photo of {i} red apples on a wooden table", config):
            if isinstance(event, (RoundStarted, RoundDone)):
                pass
        total = time.perf_counter() - start
        inside = generator.seconds + critic.seconds
        totals.append(total)
        model.append(inside)
        overheads.append(total - inside)

    print(f"# loop overhead, tiny preset — {platform.node()} ({os.cpu_count()} CPUs, {platform.processor() or platform.machine()}), "
          f"{date.today().isoformat()}")
    print(f"rounds={args.rounds} candidates={args.candidates} steps={args.steps}")
    print("| measure | median | p90 |")
    print("|---|---|---|")
    for name, values in (("round wall time (ms)", totals), ("inside the models (ms)", model),
                         ("outside the models (ms)", overheads)):
        ordered = sorted(values)
        print(f"| {name} | {statistics.median(values) * 1000:.1f} | {ordered[int(0.9 * (len(ordered) - 1))] * 1000:.1f} |")
    share = statistics.median(o / t for o, t in zip(overheads, totals))
    print(f"| overhead share of a round | {share:.1%} | |")


if __name__ == "__main__":
    main()
