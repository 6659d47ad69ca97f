"""Export speed of two source trees side by side in one run: each tree's `bench_export` (SQLite, the
same number of pairs) in alternating subprocesses, medians and the ratio per export mode.

    git worktree add /tmp/before <older commit>
    python -m bench.export_ab --before /tmp/before [--pairs 2000] [--runs 3]

Both trees must have `bench.storage_speed.bench_export` returning {mode: pairs per second}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ONE_RUN = r'''
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, ".")
from bench.storage_speed import bench_export
from storage.db import make_engine
from storage.images import ImageStore
from storage.migrate import upgrade_to_head
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    engine = make_engine(f"sqlite:///{tmp}/bench.sqlite3")
    upgrade_to_head(engine)
    print(json.dumps(bench_export(engine, ImageStore(tmp / "images"), int(sys.argv[1]), tmp)))
'''


def one_run(tree: Path, pairs: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", ONE_RUN, str(pairs)], cwd=tree, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the older tree")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.runs):
        for name in ("before", "after"):
            results[name].append(one_run(getattr(args, name), args.pairs))
    for mode in results["after"][0]:
        before = statistics.median(run[mode] for run in results["before"])
        after = statistics.median(run[mode] for run in results["after"])
        print(f"{mode}: before {before:,.0f} pairs/s, after {after:,.0f} pairs/s, {after / before:.2f}x "
              f"(SQLite, {args.pairs} pairs, median of {args.runs})")


if __name__ == "__main__":
    main()
