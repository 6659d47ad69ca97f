"""`python -m training.parrot {generate,filter,distill,evaluate,run} --config FILE.yaml [--set key=value ...]
[--sft-export FILE ...]`.

Multi-GPU distillation: `accelerate launch --config_file training/configs/accelerate_ddp.yaml
-m training.parrot distill --config ...` (ZeRO-3 / FSDP configs for full fine-tuning beside it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from training.config import ConfigError, load_config
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(PipelineConfig, args.config, args.overrides)
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))
    config.pointwise_files = [*config.pointwise_files, *args.sft_exports]
    result = PHASES[args.phase](config)
    metrics = result.get("evaluate", result) if args.phase == "run" else result
    table = metrics.pop("table", None) if isinstance(metrics, dict) else None
    print(json.dumps(result, indent=2, default=str))
    if table:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
