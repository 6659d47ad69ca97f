"""Export for training from the app: one format to a file under the exports folder (its images beside
it, or embedded), optionally packed as a portable zip the UI can offer for download, plus the command
line that writes the same from the database for larger data."""

from __future__ import annotations

import hashlib
import logging
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from rr_core.errors import InvalidRequest, RRError
from storage.db import write_transaction
from storage import repository as repo
from storage.errors import NotFound, disk_full
from storage.export import FORMATS, export_to_file
from storage.export_files import images_folder, remove_entry, write_zip
from storage.models import Role
from studio import codec
from studio.context import AppContext

__all__ = ["DOWNLOAD_PREFIX", "FORMATS", "Exports"]

log = logging.getLogger(__name__)

DOWNLOAD_PREFIX = "exports/"
"""Where the web layer serves downloads: `exports/<token>`, relative to the app's root."""

NOT_FOUND = "No such export: export again to get a new link."
"""One answer for an unknown token, an expired one and another user's, so tokens cannot be probed."""


def token_hash(token: str) -> str:
    """What the database keeps of a link: its SHA-256, so a copy of the database hands out no links."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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
        user_id = self.ctx.users.reviewer(username)
        if fmt not in FORMATS:
            raise InvalidRequest(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        out = self.exports_dir / f"{fmt}-{token}.{'parquet' if parquet else 'jsonl'}"
        try:
            with self.ctx.db() as db:
                count = export_to_file(db, self.ctx.store, fmt, out, parquet=parquet)
            served = write_zip(out) if portable else out
        except OSError as error:  # a full disk: the file and its images go, so no half export stays
            for made in (out, images_folder(out)):
                remove_entry(made)
            raise disk_full(error, "the exports folder") from error
        command = f"python -m storage.export --format {fmt} --out {out.name}"
        # Always name the database: a pasted command runs in a shell without the server's environment.
        shown = make_url(self.database_url_text).render_as_string(hide_password=True)
        command += f" --database-url '{shown}'"
        command += f" --images-dir {self.ctx.store.root}"
        result: dict[str, Any] = {"file": str(out), "count": count, "command": command}
        if portable:
            result["zip"] = str(served)
        with write_transaction(self.ctx.db) as db:
            repo.add_export_link(db, token_hash=token_hash(token), owner_id=user_id, file_name=served.name,
                                 fmt=fmt, record_count=count)
        result["download"] = DOWNLOAD_PREFIX + token
        return result

    def download(self, username: str | None, token: Any) -> Path:
        """The file behind a download link, for the reviewer who made the export or an admin; every
        attempt is logged with who asked and the outcome. Unknown, expired (removed by storage.gc) and
        other users' links all raise the same NotFound."""
        try:
            user_id = self.ctx.users.reviewer(username)
        except RRError:
            log.warning("export download refused: %r is not a reviewer (link %.8s…)", username, str(token))
            raise
        owner_id, file_name = None, None
        if isinstance(token, str) and token:
            with self.ctx.db() as db:
                entry = repo.get_export_link(db, token_hash(token))
                if entry is not None:
                    owner_id, file_name = entry.owner_id, entry.file_name
        allowed = owner_id is not None and (owner_id == user_id or self.ctx.users.role(username) is Role.ADMIN)
        # The row names a file, never a path: whatever the database holds, only the exports folder is served.
        path = self.exports_dir / Path(file_name).name if file_name else None
        if not allowed or path is None or not path.is_file():
            log.warning("export download refused: %s asked for link %.8s… (%s)", user_id, str(token),
                        "not theirs" if owner_id is not None and not allowed else "no such file")
            raise NotFound(NOT_FOUND)
        log.info("export download: %s fetched %s (%d bytes, made by %s)", user_id, path.name,
                 path.stat().st_size, owner_id)
        return path
