"""`python -m training.rl --config training/configs/rl_tiny.yaml [key=value ...] [--from-db [--database-url URL]]`
(or under `accelerate launch`).

--from-db trains on the studio's own requests: the database's prompts of the config's task (with
their edit sources) are exported into <output_dir>/from-db/ and replace the config's `data`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from training.from_db import FROM_DB_DIR, FromDbError, export_from_db
from training.rl.config import load_rl_config
from training.rl.trainer import RLTrainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.rl", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML file (training/configs/rl_*.yaml)")
    parser.add_argument("overrides", nargs="*", help="section.key=value settings applied over the file")
    parser.add_argument("--from-db", action="store_true",
                        help="train on the studio database's prompts (exported into <output_dir>/from-db/)")
    parser.add_argument("--database-url", default=None,
                        help="with --from-db: the database (default: RR_DATABASE_URL, else the data folder's SQLite)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("RR_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.database_url and not args.from_db:
        parser.error("--database-url goes with --from-db")
    config = load_rl_config(args.config, args.overrides)
    if args.from_db:
        try:
            prompts = export_from_db("rl-prompts", Path(config.output_dir) / FROM_DB_DIR, args.database_url)
        except FromDbError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not prompts.count:
            print("error: the database holds no prompts yet: run sessions in the app first", file=sys.stderr)
            return 2
        config.data = str(prompts.path)
    final = RLTrainer(config).train()
    logging.getLogger("training.rl").info("final adapter: %s", final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
