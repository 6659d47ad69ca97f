"""`python -m training.rl --config training/configs/rl_tiny.yaml [key=value ...]` (or under `accelerate launch`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from training.rl.config import load_rl_config
from training.rl.trainer import RLTrainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.rl", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML file (training/configs/rl_*.yaml)")
    parser.add_argument("overrides", nargs="*", help="section.key=value settings applied over the file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("RR_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_rl_config(args.config, args.overrides)
    final = RLTrainer(config).train()
    logging.getLogger("training.rl").info("final adapter: %s", final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
