"""Garbage collection of the image store: a maintenance job that owns its transactions.

Order matters: unused image rows are deleted and committed first, then files are deleted only when no
committed row names them and they are older than the grace period. A round in flight has written its
file but not committed its row; the grace period keeps that file.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.db import make_session_factory, write_transaction
from storage.images import GC_GRACE_S, ImageStore
from storage.repository import delete_unreferenced_image_rows, referenced_image_hashes


def collect_garbage(engine_or_factory: Engine | sessionmaker[Session], store: ImageStore, *,
                    grace_s: float = GC_GRACE_S) -> list[str]:
    """Delete unused image rows and unreferenced files older than `grace_s`; returns deleted hashes."""
    factory = (make_session_factory(engine_or_factory) if isinstance(engine_or_factory, Engine)
               else engine_or_factory)
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=grace_s)
    with write_transaction(factory) as session:
        delete_unreferenced_image_rows(session, cutoff)
    with factory() as session:
        referenced = referenced_image_hashes(session)
    return store.collect_garbage(referenced, grace_s=grace_s)
