"""Training straight from the studio's database: `--from-db [--database-url URL]` on
`python -m training.parrot` and `python -m training.rl`.

training/ never imports storage (docs/architecture.md): it reads export files. So a run that starts
from the database runs the export command itself, `python -m storage.export`, in a child process,
into the run's own folder (`<work dir>/from-db/`), then reads those files like any other export. The
files stay there, so a finished run shows exactly which data it trained on, and a rerun exports again
(the database may have grown since).

What each run takes from the database:
- PARROT: `--format parrot` (human A/B judgements with the reviewed critiques of both images) as a
  data source, and `--format sft` (every reviewed critique) as pointwise distillation samples;
- RL: `--format rl-prompts` (every request of the config's task, with the edit sources) as prompts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

FROM_DB_DIR = "from-db"
EXPORT_TIMEOUT_S = 3600


class FromDbError(RuntimeError):
    """The export from the database failed (no database, no studio tables, a bad URL)."""


@dataclass(frozen=True)
class DbExport:
    """One export file written from the database, and how many records it holds."""

    format: str
    path: Path
    count: int


def export_command(fmt: str, out: Path, database_url: str | None = None) -> list[str]:
    """The `python -m storage.export` command line that writes `fmt` to `out`."""
    command = [sys.executable, "-m", "storage.export", "--format", fmt, "--out", str(out)]
    if database_url:
        command += ["--database-url", database_url]
    return command


def export_from_db(fmt: str, folder: str | Path, database_url: str | None = None) -> DbExport:
    """Run the export of `fmt` into `folder/<fmt>.jsonl` (images beside it); FromDbError with the
    export's own message when it fails. Without `database_url` the export takes RR_DATABASE_URL, else
    the SQLite file under RR_DATA_DIR, as the app does."""
    out = (Path(folder) / f"{fmt}.jsonl").resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    repo_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(export_command(fmt, out, database_url), capture_output=True, text=True,
                            timeout=EXPORT_TIMEOUT_S, env=env)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise FromDbError(f"exporting {fmt} from the database failed: {message[-1] if message else result.returncode}")
    count = sum(1 for line in out.read_text(encoding="utf-8").splitlines() if line.strip())
    logger.info("exported %d %s records from the database to %s", count, fmt, out)
    return DbExport(fmt, out, count)
