"""Generation latency of a generator backend: seconds per call and per image, after one warm-up call.

Runs the tiny offline pipelines by default (CPU, seconds); pass --model-id to time a real checkpoint.
    python -m bench.generator_speed --task t2i --steps 2 --candidates 4
"""

from __future__ import annotations

import argparse
import statistics
import time

from PIL import Image

from rr_core.generators import GenerationRequest, GeneratorConfig, load_generator
from rr_core.generators.tiny import tiny_generator_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["t2i", "edit"], default="t2i")
    parser.add_argument("--model-id", default=None, help="a real checkpoint; default: the tiny offline one")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    if args.model_id is None:
        config = tiny_generator_config(args.task)
    else:
        config = GeneratorConfig(task=args.task, model_id=args.model_id)
    started = time.perf_counter()
    generator = load_generator(config)
    load_s = time.perf_counter() - started
    source = Image.new("RGB", (args.size, args.size), (120, 90, 200)) if args.task == "edit" else None
    request = GenerationRequest(
        "a red fox in the snow",
        steps=args.steps,
        width=args.size,
        height=args.size,
        num_candidates=args.candidates,
        source_image=source,
    )
    generator.generate(request)
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        generator.generate(request)
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings)
    print(
        f"model={generator.model_id} family={generator.family} "
        f"device={generator.device} dtype={generator.dtype}"
    )
    print(f"load {load_s:.2f} s; {args.size}x{args.size}, {args.steps} steps, {args.candidates} candidate(s)")
    print(
        f"median {median:.3f} s per call, {median / args.candidates:.3f} s per image ({args.repeats} calls)"
    )


if __name__ == "__main__":
    main()
