"""The multi-process path exercised (issue 14 item 10): PARROT distillation and RL on the tiny models
on two CPU processes under `accelerate launch` (torch.distributed over gloo). Both replicas must have
moved from their start and ended with the same weights.

Why not literally `accelerate launch --num_processes 2 --cpu`: with --cpu, accelerate 1.x takes its
"simple" launcher, which starts more than one process only through mpirun (--mpirun_hostfile);
without MPI installed it silently runs ONE process (world size 1, nothing distributed). The launch
here is the torchrun path (`--multi_gpu`) with ACCELERATE_USE_CPU=true, which is what --cpu sets:
accelerate then runs MULTI_CPU with the gloo backend, the same DDP wrapping and gradient all-reduce
as on GPUs. The test asserts world size 2 and backend gloo, so a launch that falls back to one
process fails instead of passing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def launch(mode: str, out: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(ROOT / "tests/flywheel/ddp_worker.py"), mode, str(out)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads((out / f"{mode}-rank{rank}.json").read_text()) for rank in (0, 1)]


def check_replicas(ranks: list[dict]) -> None:
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world_size"] for r in ranks} == {2}
    assert {r["backend"] for r in ranks} == {"gloo"}
    assert ranks[0]["before"] == ranks[1]["before"], "the replicas started from different weights"
    assert ranks[0]["after"] != ranks[0]["before"], "training did not change the weights"
    assert ranks[0]["after"] == ranks[1]["after"], "the replicas ended with different weights"
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2


def test_parrot_distillation_on_two_processes(tmp_path):
    from tests.training_parrot.conftest import write_sft_dataset

    write_sft_dataset(tmp_path)
    check_replicas(launch("distill", tmp_path))
    assert (tmp_path / "student" / "adapter").is_dir()


def test_rl_on_two_processes(tmp_path):
    check_replicas(launch("rl", tmp_path))
