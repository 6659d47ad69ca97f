"""Time per round spent outside the models: events, image handling, parsing, reward, bookkeeping.

    python bench/loop_overhead.py --rounds 20 --candidates 2

Uses the tiny preset (offline). The diffusers pipeline call and the critic's model calls are timed
by wrapping them; the loop's overhead is the rest of each round's wall time (prompt building, image
preparation, parsing, reward, events, bookkeeping). Target: under 20 ms per round on the
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

from rr_core.loop import LoopConfig  # noqa: E402
from rr_core.presets import Models, resolve_preset  # noqa: E402
from rr_core.rubric import Task  # noqa: E402


class Clock:
    """Adds up the wall time spent in the wrapped callables (iterators included, step by step)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            self.seconds += time.perf_counter() - start
            return self._iterate(result) if hasattr(result, "__next__") else result
        return timed

    def _iterate(self, iterator):
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - start
                return
            self.seconds += time.perf_counter() - start
            yield item


class TimedPipeline:
    """A diffusers pipeline whose calls are timed; every other attribute passes through."""

    def __init__(self, pipeline, clock: Clock) -> None:
        self._pipeline, self._call = pipeline, clock.wrap(pipeline.__call__)

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._pipeline, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    studio = Models(resolve_preset("tiny"))
    loop = studio.loop(Task.T2I)
    # "The models" are the diffusers pipeline call and the critic's ChatModel (chat template, image
    # processor, generate, decode); prompt building, image preparation, parsing, reward, events and
    # bookkeeping are the loop's overhead.
    clock = Clock()
    generator = loop.generator
    generator.pipeline = TimedPipeline(generator.pipeline, clock)
    chat_model = loop.critic.critic_for(Task.T2I).chat_model
    chat_model.complete = clock.wrap(chat_model.complete)
    chat_model.stream = clock.wrap(chat_model.stream)
    config = LoopConfig(rounds=1, candidates=args.candidates, stop_threshold=None, steps=args.steps, max_retries=0)

    list(loop.run("warm-up prompt", config))  # first call pays one-off costs (allocations, caches)
    totals, overheads, model = [], [], []
    for i in range(args.rounds):
        clock.seconds = 0.0
        start = time.perf_counter()
        for _ in loop.run(f"a photo of {i} red apples on a wooden table", config):
            pass
        total = time.perf_counter() - start
        inside = clock.seconds
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
