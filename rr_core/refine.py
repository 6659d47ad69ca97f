"""Command line: generate, critique and refine, for one prompt or a JSONL batch.

    python -m rr_core.refine --prompt "a red fox in the snow" --rounds 3 --candidates 2 --preset tiny --out out/fox
    python -m rr_core.refine --prompt "make the sky purple" --image source.png --out out/sky
    python -m rr_core.refine --batch prompts.jsonl --concurrency 2 --out out/batch   # resumable

Each run folder holds every image (round_R_cand_K.png), every critique with its raw text
(round_R_cand_K.json) and summary.json with the score history. A batch line is a JSON object with
"prompt" and optionally "id" and "image" (a source image path, relative to the JSONL file). An
interrupted batch resumes where it stopped: items whose summary.json exists are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rr_core.config import load_mapping
from rr_core.errors import InvalidRequest, RRError
from rr_core.images import read_image_ref
from rr_core.loop import CritiqueParsed, ErrorEvent, ImageReady, LoopConfig, LoopDone, LoopResult, RoundDone
from rr_core.presets import PRESETS, Preset, Models, add_artefact_arguments, artefacts_from_args, resolve_preset
from rr_core.reward import RewardSpec
from rr_core.rubric import Task

logger = logging.getLogger("rr_core.refine")


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class BatchItem:
    id: str
    prompt: str
    image: Path | None = None


def read_batch(path: Path) -> list[BatchItem]:
    """Read and check the whole JSONL file first, so a bad line fails before any work is done."""
    items, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise InvalidRequest(f"{path}:{number}: each line needs a \"prompt\" string")
        item_id = str(record.get("id", f"item{number:05d}"))
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", item_id) or item_id.startswith("."):
            raise InvalidRequest(f"{path}:{number}: id {item_id!r} must be letters, digits, '_', '-', '.'")
        if item_id in seen:
            raise InvalidRequest(f"{path}:{number}: duplicate id {item_id!r}")
        seen.add(item_id)
        image = record.get("image")
        items.append(BatchItem(item_id, record["prompt"], (path.parent / image) if image else None))
    return items


def run_one(studio: Models, prompt: str, config: LoopConfig, out: Path, source: Path | None = None,
            on_event=None) -> LoopResult:
    """Run the loop for one prompt and write images, critiques and the summary under `out`."""
    task = Task.EDIT if source is not None else Task.T2I
    source_image = read_image_ref(Path(source), "source image") if source is not None else None
    out.mkdir(parents=True, exist_ok=True)
    if source_image is not None:
        source_image.save(out / "source.png")
    result = None
    errors = []
    for event in studio.loop(task).run(prompt, config, source_image=source_image):
        if on_event is not None:
            on_event(event)
        if isinstance(event, ImageReady):
            event.image.save(out / f"round_{event.round_index}_cand_{event.candidate_index}.png")
        elif isinstance(event, CritiqueParsed):
            write_atomic(out / f"round_{event.round_index}_cand_{event.candidate_index}.json",
                         json.dumps(event.critique.to_dict(), indent=2))
        elif isinstance(event, ErrorEvent):
            errors.append({"round": event.round_index, "stage": event.stage, "message": event.message,
                           "action": event.action})
        elif isinstance(event, LoopDone):
            result = event.result
    write_atomic(out / "summary.json", json.dumps(summary(prompt, task, config, result, errors, studio), indent=2))
    return result


def summary(prompt: str, task: Task, config: LoopConfig, result: LoopResult, errors: list, studio: Models) -> dict:
    rounds = []
    for r in result.rounds:
        rounds.append({
            "round": r.index, "prompt": r.prompt, "judged_against": r.request or r.prompt, "proposal": r.proposal,
            "pick": r.pick, "reward": r.reward,
            "skipped": r.skipped, "generation_s": round(r.generation_s, 4), "critique_s": round(r.critique_s, 4),
            "candidates": [{
                "candidate": c.index, "seed": c.seed, "image": f"round_{r.index}_cand_{c.index}.png",
                "reward": c.reward,
                "status": c.critique.status.value if c.critique else None,
                "scores": {k: ("N/A" if s.not_applicable else s.score) for k, s in c.critique.scores.items()}
                if c.critique else {},
            } for c in r.candidates],
        })
    best = result.best
    return {
        "prompt": prompt, "task": task.value, "models": studio.preset.describe(), "config": config.to_dict(),
        "stop_reason": result.stop_reason, "reward_history": result.reward_history(),
        "best": None if best is None else {"round": result.best_round, "candidate": result.best_candidate,
                                           "image": f"round_{result.best_round}_cand_{result.best_candidate}.png",
                                           "reward": best.reward},
        "rounds": rounds, "errors": errors,
    }


def run_batch(studio: Models, items: list[BatchItem], config: LoopConfig, out: Path, concurrency: int,
              progress: bool = True) -> dict[str, int]:
    """Run every item not done yet; returns counts of done, skipped (already done) and failed items."""
    from tqdm import tqdm

    todo = [item for item in items if not (out / item.id / "summary.json").exists()]
    counts = {"done": 0, "skipped": len(items) - len(todo), "failed": 0}
    failures_path = out / "failures.jsonl"
    lock = threading.Lock()
    bar = tqdm(total=len(items), initial=counts["skipped"], disable=not progress, unit="prompt")
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(run_one, studio, item.prompt, config, out / item.id, item.image): item for item in todo}
        for future in as_completed(futures):
            item = futures[future]
            try:
                future.result()
                counts["done"] += 1
            except RRError as exc:
                counts["failed"] += 1
                with lock, failures_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"id": item.id, "error": str(exc)}) + "\n")
            bar.update(1)
    bar.close()
    return counts


def build_parser(prog: str = "python -m rr_core.refine", out_required: bool = True) -> argparse.ArgumentParser:
    """The command's flags; studio.refine reuses them (there --out is optional: the database is the output)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the request (text-to-image) or the edit instruction (with --image)")
    what.add_argument("--batch", type=Path, help="a JSONL file of {\"prompt\", \"id\"?, \"image\"?} lines")
    parser.add_argument("--image", type=Path, help="source image: makes this an edit session")
    parser.add_argument("--out", type=Path, required=out_required, help="output folder")
    parser.add_argument("--preset", default="auto", choices=PRESETS)
    parser.add_argument("--critic-url", help="OpenAI-compatible critic server for both tasks (preset remote)")
    parser.add_argument("--critic-t2i-url", help="the text-to-image critic's server (else --critic-url)")
    parser.add_argument("--critic-edit-url", help="the edit critic's server (else --critic-url)")
    parser.add_argument("--critic-timeout", type=float, metavar="S",
                        help="total seconds a remote critique may take, retries included "
                             "(default: RR_CRITIC_TIMEOUT, else 300)")
    parser.add_argument("--critic-retries", type=int, metavar="N",
                        help="extra attempts after a refused connection or a 5xx (default: RR_CRITIC_RETRIES, else 2)")
    parser.add_argument("--low-memory", action="store_true", help="4-bit critics and offloaded generators (24 GB GPU)")
    add_artefact_arguments(parser)
    parser.add_argument("--config", type=Path, help="YAML file of loop settings (flags override it)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one loop setting of the file, e.g. --set reward.dimensions=[text_faithfulness]; "
                             "repeatable")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--candidates", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--fresh-seeds", action="store_true", default=None, help="new seeds every round")
    parser.add_argument("--threshold", type=float, dest="stop_threshold",
                        help="stop when every stop dimension scores at least this (1-4)")
    parser.add_argument("--no-threshold", action="store_true", help="never stop on scores")
    parser.add_argument("--patience", type=int, help="stop after this many rounds without improvement")
    parser.add_argument("--reward-dims", help="comma-separated dimensions in the reward (default: all)")
    parser.add_argument("--upstream", action="store_true",
                        help="upstream's rule: one refinement, skipped if text faithfulness and quality >= 3")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--negative-prompt")
    parser.add_argument("--template", action="append", default=[], type=Path,
                        help="your own prompt template file (assets/prompts format); repeatable")
    parser.add_argument("--critic-max-tokens", type=int, help="cap on each critique's length in tokens")
    parser.add_argument("--retries", type=int, dest="max_retries", help="retries of a failed generation or critique")
    parser.add_argument("--concurrency", type=int, default=1, help="batch items run at once")
    parser.add_argument("--quiet", action="store_true")
    return parser


def loop_config(args: argparse.Namespace) -> LoopConfig:
    """The YAML file's loop settings, then `--set key=value` overrides, then the flags; unknown keys rejected."""
    values: dict[str, Any] = load_mapping(args.config, args.set)
    for name in ("rounds", "candidates", "seed", "fresh_seeds", "stop_threshold", "patience", "steps", "guidance",
                 "width", "height", "negative_prompt", "max_retries"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.no_threshold:
        values["stop_threshold"] = None
    if args.reward_dims:
        values["reward"] = RewardSpec(dimensions=tuple(d.strip() for d in args.reward_dims.split(",") if d.strip()))
    if args.upstream:
        return LoopConfig.upstream(**values)
    return LoopConfig.from_dict(values)


def preset_from_args(args: argparse.Namespace) -> Preset:
    """The preset the model flags name (shared with studio.refine, which adds the database)."""
    return resolve_preset(args.preset, critic_url=args.critic_url, low_memory=args.low_memory,
                          critic_t2i_url=args.critic_t2i_url, critic_edit_url=args.critic_edit_url,
                          critic_timeout=args.critic_timeout, critic_retries=args.critic_retries,
                          critic_max_new_tokens=args.critic_max_tokens,
                          prompt_templates=tuple(str(p) for p in args.template),
                          artefacts=artefacts_from_args(args))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    try:
        config = loop_config(args)
        preset = preset_from_args(args)
        if preset.banner and not args.quiet:
            print(preset.banner, file=sys.stderr)
        studio = Models(preset)
        if args.batch:
            counts = run_batch(studio, read_batch(args.batch), config, args.out, args.concurrency,
                               progress=not args.quiet)
            print(json.dumps(counts))
            return 1 if counts["failed"] else 0
        result = run_one(studio, args.prompt, config, args.out, args.image, on_event=None if args.quiet else _log)
        print(json.dumps({"out": str(args.out), "stop_reason": result.stop_reason,
                          "reward_history": result.reward_history()}))
        return 0
    except (RRError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _log(event) -> None:
    if isinstance(event, RoundDone):
        r = event.result
        reward = "none" if r.reward is None else f"{r.reward:.3f}"
        print(f"round {r.index}: reward {reward}; next prompt: {r.proposal[:100]}", file=sys.stderr)
    elif isinstance(event, ErrorEvent):
        print(f"round {event.round_index}: {event.stage} failed ({event.action}): {event.message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
