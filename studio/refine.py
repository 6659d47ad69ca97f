"""Command line: generate, critique and refine into the studio's database, as the app does.

    python -m studio.refine --prompt "a red fox in the snow" --rounds 3 --preset tiny
    python -m studio.refine --prompt "make the sky purple" --image source.png --user alice
    python -m studio.refine --batch prompts.jsonl --concurrency 2 --database-url postgresql+psycopg://...

The same flags as `python -m rr_core.refine` (models, loop settings, trained adapters and LoRAs),
plus --database-url (default RR_DATABASE_URL, else the data folder's SQLite file) and --user (whose
sessions they are; default the local user of a studio without sign-in). Every round is recorded by
the app's own jobs (studio.runs), so a session made here is listed in the Sessions view, can be
reviewed and continued in the app, and reaches the exports. `rr_core.refine` stays the files-only
command (no database); --out here writes one summary.json per session next to the database rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rr_core.errors import RRError
from rr_core.images import read_image_ref
from rr_core.presets import Models
from rr_core.refine import BatchItem, build_parser, loop_config, preset_from_args, read_batch, write_atomic
from storage import repository as repo
from storage.errors import NotFound
from storage.models import Role
from studio.container import Services
from studio.users import AuthSettings

logger = logging.getLogger("studio.refine")


def parser() -> argparse.ArgumentParser:
    """rr_core.refine's flags, --out optional, plus where and as whom the sessions are recorded."""
    built = build_parser(prog="python -m studio.refine", out_required=False)
    built.description = __doc__.split("\n\n")[0]
    built.add_argument("--database-url", default=None,
                       help="the studio's database (default: RR_DATABASE_URL, else the data folder's SQLite file)")
    built.add_argument("--user", default=None,
                       help="record the sessions as this user (default: the local user of a studio without sign-in)")
    return built


def cli_auth(db_factory: Any, user: str | None) -> AuthSettings:
    """Who the command acts as. Without --user: the local admin, as in an app without sign-in. With
    --user: that user, keeping the role their row already has (a designer when new), so recording
    a session never demotes or promotes anyone."""
    if not user:
        return AuthSettings()
    if ":" in user:
        raise ValueError(f"user {user!r}: a username cannot contain ':'")
    with db_factory() as db:
        try:
            role = repo.get_user(db, user).role
        except NotFound:
            role = Role.DESIGNER
    return AuthSettings(users={user: ("", role)})


def open_services(args: argparse.Namespace) -> Services:
    """The app's services over the database and data folder the flags name, with the models they name."""
    from rr_core.paths import data_dir
    from storage.db import database_url, make_engine, make_session_factory
    from storage.images import ImageStore
    from storage.migrate import upgrade_to_head

    preset = preset_from_args(args)
    if preset.banner and not args.quiet:
        print(preset.banner, file=sys.stderr)
    url = args.database_url or database_url()
    engine = make_engine(url)
    upgrade_to_head(engine)
    auth = cli_auth(make_session_factory(engine), args.user)
    return Services(Models(preset), engine, ImageStore(data_dir() / "images"), auth=auth,
                    max_runs_per_user=max(1, args.concurrency), exports_dir=data_dir() / "exports",
                    database_url_text=url, remote_critic=preset.critic_kind == "openai")


def run_item(services: Services, user: str | None, item: BatchItem, settings: dict[str, Any],
             quiet: bool = True) -> dict[str, Any]:
    """One session through the app's run job; returns its summary (session id, stop reason, rewards)."""
    source = read_image_ref(Path(item.image), "source image") if item.image is not None else None
    view = None
    logged = ""  # the run view is re-yielded for every streamed critique token: log only changes
    for view in services.run_loop(user, item.prompt, settings, source):
        if not quiet and view.status and view.status != logged:
            logged = view.status
            logger.info("%s: %s", item.id, view.status)
    if view is None or not view.run.candidate_ids:
        raise RRError(f"{item.id}: no round was stored (every generation failed)")
    return {"id": item.id, "session_id": view.session_id, "task": view.task, "stop_reason": view.stop_reason,
            "reward_history": [r.reward for r in view.run.state.rounds], "notes": list(view.messages)}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    try:
        settings = loop_config(args).to_dict()
        items = read_batch(args.batch) if args.batch else [BatchItem("session", args.prompt, args.image)]
        services = open_services(args)
    except (RRError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as pool:
            futures = [pool.submit(run_item, services, args.user, item, settings, args.quiet) for item in items]
            for item, future in zip(items, futures):
                try:
                    result = future.result()
                except (RRError, ValueError, OSError) as exc:
                    failed += 1
                    print(json.dumps({"id": item.id, "error": str(exc)}))
                    continue
                print(json.dumps(result))
                if args.out:
                    folder = args.out / item.id if args.batch else args.out
                    folder.mkdir(parents=True, exist_ok=True)
                    write_atomic(folder / "summary.json", json.dumps(result, indent=2))
    finally:
        services.engine.dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
