"""The Training view's logic (admins): what the database holds that training can use, the exact
commands that train on it, and how the runs under the data folder are doing, read from their logs.

The app launches no training job: runs take hours on a GPU machine, so the view gives the command
lines (each with `--from-db` and this studio's database) and watches the folders those commands
write into (`<data folder>/runs/...`), reading the logs the trainers already write:
- PARROT distillation: `train_log.jsonl` (step, loss) and the config's `max_steps`; `eval/metrics.json`
  (pairwise accuracy) once evaluated;
- RL: `metrics.jsonl` (step, reward) and `final/` once finished.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from storage import repository as repo
from storage.models import PairSource, Role
from studio.context import AppContext
from studio.users import RoleRequired

RUNS_DIR = "runs"
MAX_RUNS = 50
PARROT_CONFIG = "training/configs/parrot_8b_80gb.yaml"
RL_CONFIGS = {"t2i": "training/configs/rl_flux_t2i.yaml", "edit": "training/configs/rl_flux_kontext_edit.yaml"}


@dataclass
class RunProgress:
    """One training run found under the data folder, as its logs describe it."""

    name: str
    kind: str  # "parrot" | "rl"
    step: int = 0
    total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    finished: bool = False
    artefact: str = ""

    def row(self) -> list[Any]:
        """The run as a table row: name, kind, progress, latest metrics, artefact."""
        progress = f"{self.step}/{self.total}" if self.total else str(self.step)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
        return [self.name, self.kind, progress + (" (done)" if self.finished else ""), shown, self.artefact]


@dataclass
class TrainingOverview:
    """Everything the Training view shows."""

    counts: dict[str, int]
    commands: str
    runs: list[RunProgress]


def _last_json_line(path: Path) -> dict[str, Any]:
    """The last complete JSON line of a log being written (a half-written last line is skipped)."""
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            return record
    return {}


def _numbers(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    return {key: float(record[key]) for key in keys if isinstance(record.get(key), (int, float))}


def _max_steps(folder: Path, key: str = "max_steps") -> int | None:
    """`max_steps` from a run's saved config (RL: config.json; distillation: distill_config.json),
    None when it saved none or trains by epochs."""
    for name in ("config.json", "distill_config.json"):
        path = folder / name
        if path.is_file():
            try:
                value = json.loads(path.read_text(encoding="utf-8")).get(key)
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(value, int) and value > 0:
                return value
    return None


def parrot_run(student: Path, root: Path) -> RunProgress:
    """A PARROT run from its student folder (train_log.jsonl) and its work folder's eval/metrics.json."""
    work = student.parent
    last = _last_json_line(student / "train_log.jsonl")
    run = RunProgress(str(work.relative_to(root)), "parrot", int(last.get("step", 0)), _max_steps(student),
                      _numbers(last, ("loss",)))
    metrics_file = work / "eval" / "metrics.json"
    if metrics_file.is_file():
        overall = json.loads(metrics_file.read_text(encoding="utf-8")).get("overall", {})
        run.metrics.update(_numbers(overall, ("accuracy_with_ties", "accuracy_without_ties")))
    run.finished = (student / "distill_summary.json").is_file()
    for artefact in ("adapter", "merged"):
        if (student / artefact).is_dir():
            run.artefact = str(student / artefact)
            break
    return run


def rl_run(folder: Path, root: Path) -> RunProgress:
    """An RL run from its metrics.jsonl (training and evaluation lines) and its final/ LoRA."""
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip().startswith("{") and line.strip().endswith("}")]
    step = max((int(r.get("step", 0)) for r in lines), default=0)
    metrics: dict[str, float] = {}
    for record in lines:
        metrics.update({k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))
                        and (k.startswith("reward/mean") or k.startswith("eval/reward"))})
    final = folder / "final"
    return RunProgress(str(folder.relative_to(root)), "rl", step, _max_steps(folder), metrics, final.is_dir(),
                       str(final) if final.is_dir() else "")


def find_runs(root: Path, limit: int = MAX_RUNS) -> list[RunProgress]:
    """Every PARROT and RL run under `root` (the data folder's runs/), newest log first."""
    if not root.is_dir():
        return []
    found: list[tuple[float, RunProgress]] = []
    for log in root.rglob("train_log.jsonl"):
        found.append((log.stat().st_mtime, parrot_run(log.parent, root)))
    for log in root.rglob("metrics.jsonl"):
        found.append((log.stat().st_mtime, rl_run(log.parent, root)))
    found.sort(key=lambda item: item[0], reverse=True)
    return [run for _, run in found[:limit]]


class Training:
    """What the Training view shows an admin."""

    def __init__(self, ctx: AppContext, database_url_text: str, data_dir: Path) -> None:
        self.ctx = ctx
        self.database_url_text = database_url_text
        self.data_dir = data_dir

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / RUNS_DIR

    def overview(self, username: str | None) -> TrainingOverview:
        """Counts, commands and runs; admins only (RoleRequired otherwise)."""
        user_id = self.ctx.users.user(username)
        if self.ctx.users.role(username) is not Role.ADMIN:
            raise RoleRequired(f"The Training view is for admins; {user_id} is not one.")
        return TrainingOverview(self.counts(), self.commands(), find_runs(self.runs_dir))

    def counts(self) -> dict[str, int]:
        """What is ready for training: pairs with a human judgement, reviewed critiques, and the
        distinct prompts per task."""
        with self.ctx.db() as db:
            pairs = repo.count_preference_pairs(db, source=PairSource.HUMAN)
            reviewed = repo.count_annotated_critiques(db)
            prompts = repo.count_requests_by_task(db)
        return {"pairs": pairs, "reviewed_critiques": reviewed,
                "prompts_t2i": prompts.get("t2i", 0), "prompts_edit": prompts.get("edit", 0)}

    def _database_flag(self) -> str:
        """Always spelled out, the app's default included: the command runs in another shell, whose
        RR_DATA_DIR / RR_DATABASE_URL may name another database (a password is shown as ***)."""
        shown = make_url(self.database_url_text).render_as_string(hide_password=True)
        return f" --database-url {shlex.quote(shown)}"

    def _data_dir_prefix(self) -> str:
        """`RR_DATA_DIR=<this data folder> `: the export a --from-db run makes reads images from its store."""
        return f"RR_DATA_DIR={shlex.quote(str(self.data_dir))} "

    def commands(self) -> str:
        """The command lines that train on this database into the data folder (where this view finds
        the runs again), and the app flags that load what they produce."""
        db, env, runs = self._database_flag(), self._data_dir_prefix(), self.runs_dir
        parrot, student = runs / "parrot", runs / "parrot" / "student"
        lines = ["# PARROT: the database's A/B pairs and reviewed critiques -> a student critic",
                 f"{env}python -m training.parrot run --config {PARROT_CONFIG} --from-db{db} "
                 f"--set work_dir={shlex.quote(str(parrot))}"]
        for task, config in RL_CONFIGS.items():
            out = runs / f"rl-{task}"
            lines += [f"# RL ({task}): the database's {task} prompts -> a generator LoRA",
                      f"{env}python -m training.rl --config {config} --from-db{db} output_dir={shlex.quote(str(out))}"]
        lines += ["# Load the results back into the app",
                  f"python app.py --critic-adapter {shlex.quote(str(student / 'adapter'))} "
                  f"--t2i-lora {shlex.quote(str(runs / 'rl-t2i' / 'final'))} "
                  f"--edit-lora {shlex.quote(str(runs / 'rl-edit' / 'final'))}"]
        return "\n".join(lines)
