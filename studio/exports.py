"""Export for training from the app: one format to a file under the exports folder (its images beside
it, or embedded), optionally packed as a portable zip the UI can offer for download, plus the command
line that writes the same from the database for larger data."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from rr_core.errors import InvalidRequest
from storage.db import write_transaction
from storage.export import FORMATS, export_to_file
from storage.export_files import write_zip
from studio import codec
from studio.context import AppContext

__all__ = ["FORMATS", "Exports"]


class Exports:
    """Writes training exports for reviewers (annotator or admin)."""

    def __init__(self, ctx: AppContext, exports_dir: Path, database_url_text: str) -> None:
        self.ctx = ctx
        self.exports_dir = exports_dir
        self.database_url_text = database_url_text

    def backfill(self) -> int:
        """Store the critic prompt of critiques made before prompts were kept (revision 0003), so that
        the SFT export has them; returns how many were filled."""
        total, last = 0, 0
        while last is not None:
            with write_transaction(self.ctx.db) as db:
                filled, last = codec.backfill_critic_prompts(db, self.ctx.store, after_id=last)
            total += filled
        return total

    def export(self, username: str | None, fmt: str, parquet: bool = False,
               portable: bool = False) -> dict[str, Any]:
        """Write one training format from storage; returns the file, the record count and the command
        line that does the same for larger data. With `portable`, also a zip of the file and its
        images (`zip`): unpacked anywhere, its records still find their images, so it is what a
        browser download should serve."""
        self.ctx.users.reviewer(username)
        if fmt not in FORMATS:
            raise InvalidRequest(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        out = self.exports_dir / f"{fmt}-{stamp}.{'parquet' if parquet else 'jsonl'}"
        with self.ctx.db() as db:
            count = export_to_file(db, self.ctx.store, fmt, out, parquet=parquet)
        command = f"python -m storage.export --format {fmt} --out {out.name}"
        # Always name the database: a pasted command runs in a shell without the server's environment.
        shown = make_url(self.database_url_text).render_as_string(hide_password=True)
        command += f" --database-url '{shown}'"
        command += f" --images-dir {self.ctx.store.root}"
        result: dict[str, Any] = {"file": str(out), "count": count, "command": command}
        if portable:
            result["zip"] = str(write_zip(out))
        return result
