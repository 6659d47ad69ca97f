"""`python -m training.parrot {generate,filter,distill,evaluate,run} --config FILE.yaml [--set key=value ...]
[--sft-export FILE ...] [--from-db [--database-url URL]]`.

--from-db exports the studio's human A/B judgements (with their reviewed critiques) and its reviewed
critiques from the database into <work_dir>/from-db/ and adds them to the config's data and pointwise
files (training.from_db), so one command goes from the app's database to a student.

Multi-GPU distillation: `accelerate launch --config_file training/configs/accelerate_ddp.yaml
-m training.parrot distill --config ...` (ZeRO-3 / FSDP configs for full fine-tuning beside it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from training.config import ConfigError, load_config
from training.data import DataSource
from training.from_db import FROM_DB_DIR, FromDbError, export_from_db
from training.parrot.pipeline import (
    PipelineConfig,
    run_all,
    run_distill,
    run_evaluate,
    run_filter,
    run_generate,
)

PHASES = {"generate": run_generate, "filter": run_filter, "distill": run_distill, "evaluate": run_evaluate,
          "run": run_all}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.parrot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=sorted(PHASES), help="which phase to run (run: all of them)")
    parser.add_argument("--config", required=True, help="YAML file of a PipelineConfig")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set distill.max_steps=10 (repeatable)")
    parser.add_argument("--sft-export", dest="sft_exports", action="append", default=[], metavar="FILE",
                        help="a `python -m storage.export --format sft` file whose pointwise critiques are mixed "
                             "into the distillation data with the pairwise rationales (filter and run; repeatable)")
    parser.add_argument("--from-db", action="store_true",
                        help="train on the studio's database: its A/B judgements and reviewed critiques are "
                             "exported into <work_dir>/from-db/ and added to the data")
    parser.add_argument("--database-url", default=None,
                        help="with --from-db: the database (default: RR_DATABASE_URL, else the data folder's SQLite)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.database_url and not args.from_db:
        parser.error("--database-url goes with --from-db")
    try:
        config = load_config(PipelineConfig, args.config, args.overrides)
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))
    config.pointwise_files = [*config.pointwise_files, *args.sft_exports]
    if args.from_db:
        try:
            add_database_data(config, args.database_url)
        except (FromDbError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    result = PHASES[args.phase](config)
    metrics = result.get("evaluate", result) if args.phase == "run" else result
    table = metrics.pop("table", None) if isinstance(metrics, dict) else None
    print(json.dumps(result, indent=2, default=str))
    if table:
        print(table)
    return 0


def add_database_data(config: PipelineConfig, database_url: str | None = None) -> dict[str, int]:
    """Export the database's PARROT pairs and reviewed critiques into the run's folder and add them to
    `config` (pairs as a `storage` data source named "studio", critiques as pointwise files); returns
    the record counts. Nothing to train on in the database is an error naming what the app needs."""
    folder = config.root / FROM_DB_DIR
    pairs = export_from_db("parrot", folder, database_url)
    critiques = export_from_db("sft", folder, database_url)
    if not pairs.count and not critiques.count:
        raise ValueError("the database has nothing to distil yet: pick A/B pairs and review critiques in the app's "
                         "Annotate tab first")
    if pairs.count:
        config.data = [*config.data, DataSource("storage", str(pairs.path), name="studio")]
    if critiques.count:
        config.pointwise_files = [*config.pointwise_files, str(critiques.path)]
    return {"pairs": pairs.count, "critiques": critiques.count}


if __name__ == "__main__":
    sys.exit(main())
