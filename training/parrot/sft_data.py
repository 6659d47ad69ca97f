"""Distillation data: kept rationales as sharegpt-with-images records, and their tokenized batches.

A pairwise sample is the serving prompt `build_pairwise(task, request, A, B, source)` with the
cleaned rationale as the assistant turn: the label never appears in the input. Pointwise samples
are derived from the same pairs (training.parrot.pointwise) and also come from `python -m storage.export --format sft` files (JSONL or Parquet, images as paths or embedded;
storage/FORMATS.md), mixed in by `PipelineConfig.pointwise_files` or `python -m training.parrot
run --sft-export FILE`. The
collator masks the labels so the loss covers only the assistant critique (and its end token): the
system and user turns, every image token and the padding are -100.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from rr_core.images import load_image
from rr_core.prompts import build_pairwise
from rr_core.rubric import Task
from training.data import PreferencePair, image_data, read_rows
from training.parrot.pointwise import derived_sample
from training.parrot.records import JsonlWriter, read_jsonl

IGNORE_INDEX = -100


def _save_image(image: Image.Image, folder: Path) -> str:
    """Content-addressed PNG under `folder`; returns its absolute path."""
    from rr_core.images import png_bytes

    data = png_bytes(image)
    digest = hashlib.sha256(data).hexdigest()
    path = folder / digest[:2] / f"{digest}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(path.resolve())


def pairwise_sample(pair: PreferencePair, rationale: str) -> dict[str, Any]:
    """One sharegpt record (PIL images) whose assistant turn is the rationale; no label in the input."""
    image_a, image_b, source = pair.open()
    conversation = build_pairwise(pair.task, pair.request, image_a, image_b,
                                  source_image=source if pair.task is Task.EDIT else None)
    record = conversation.to_sharegpt()
    record["messages"].append({"role": "assistant", "content": rationale})
    return record


def build_sft_dataset(kept: list[dict[str, Any]], pairs: list[PreferencePair], out_path: str | Path,
                      pointwise_files: list[str] = (), seed: int = 0,
                      derived_pointwise: list[dict[str, Any]] = (), derived_ratio: float | None = None
                      ) -> dict[str, int]:
    """Write the mixed sharegpt dataset, images under `<out>.images/`, shuffled: the kept pairwise
    rationales, the kept pointwise critiques derived from the pairs (training.parrot.pointwise; at
    most `derived_ratio` per pairwise sample, None for all) and the pointwise export files."""
    out_path = Path(out_path)
    images_dir = out_path.with_name(out_path.name + ".images")
    by_id = {p.pair_id: p for p in pairs}
    records: list[dict[str, Any]] = []
    for kept_record in kept:
        pair = by_id.get(kept_record["pair_id"])
        if pair is None:
            raise ValueError(f"kept rationale {kept_record['pair_id']!r} names a pair not in the data")
        record = pairwise_sample(pair, kept_record["text"])
        record["images"] = [_save_image(image, images_dir) for image in record["images"]]
        records.append({**record, "kind": "pairwise", "pair_id": pair.pair_id})
    n_pairwise = len(records)
    derived = list(derived_pointwise)
    random.Random(seed + 1).shuffle(derived)
    if derived_ratio is not None:
        derived = derived[:round(derived_ratio * n_pairwise)]
    for kept_record in derived:
        pair = by_id.get(kept_record["pair_id"])
        if pair is None:
            raise ValueError(f"kept pointwise critique {kept_record['id']!r} names a pair not in the data")
        record = derived_sample(pair, kept_record["side"], kept_record["text"])
        record["images"] = [_save_image(image, images_dir) for image in record["images"]]
        records.append({**record, "kind": "pointwise-derived", "pair_id": kept_record["id"]})
    n_pointwise = 0
    for file in pointwise_files:
        for record in _pointwise_records(file, images_dir):
            records.append(record)
            n_pointwise += 1
    random.Random(seed).shuffle(records)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with JsonlWriter(tmp) as writer:
        for record in records:
            writer.write(record)
    tmp.replace(out_path)
    return {"pairwise": n_pairwise, "pointwise_derived": len(derived), "pointwise": n_pointwise}


def _pointwise_records(file: str | Path, images_dir: Path) -> list[dict[str, Any]]:
    """Samples of a `storage.export --format sft` file (JSONL or Parquet; images as paths, relative to
    the file, or embedded PNG data, which is written under `images_dir` so every sample holds paths)."""
    root = Path(file).parent
    samples = []
    for record in read_rows(file):
        messages = json.loads(record["messages"]) if isinstance(record["messages"], str) else record["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"{file}: a sample must end with the assistant's critique")
        images = []
        for value in record.get("images") or []:
            data = image_data(value, root)
            if data is None:
                raise ValueError(f"{file}: critique {record.get('critique_id')} has an empty image entry")
            images.append(_save_image(load_image(data), images_dir) if isinstance(data, bytes) else data)
        samples.append({"messages": messages, "images": images, "kind": "pointwise",
                        "critique_id": record.get("critique_id")})
    return samples


def _chat(messages: list[dict[str, str]], images: list[Image.Image]) -> list[dict[str, Any]]:
    """sharegpt turns (text with <image> marks) -> transformers chat content with the PIL images in place."""
    queue = list(images)
    chat = []
    for message in messages:
        pieces = message["content"].split("<image>")
        content: list[dict[str, Any]] = []
        for index, piece in enumerate(pieces):
            if index:
                if not queue:
                    raise ValueError("a sample has more <image> marks than images")
                content.append({"type": "image", "image": queue.pop(0)})
            if piece:
                content.append({"type": "text", "text": piece})
        chat.append({"role": message["role"], "content": content})
    if queue:
        raise ValueError("a sample has more images than <image> marks")
    return chat


def sample_key(sample: dict[str, Any]) -> str:
    """A stable name of an SFT sample for reports: its pair or critique id, else a hash of its content."""
    for key in ("pair_id", "critique_id"):
        if sample.get(key):
            return f"{sample.get('kind', 'sample')}:{sample[key]}"
    content = json.dumps([sample["messages"], sample.get("images") or []], sort_keys=True)
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()[:16]


@dataclass
class SFTCollator:
    """Tokenizes sharegpt samples into right-padded batches with prompt- and image-masked labels.

    The prompt is encoded with the processor exactly as at serving time (chat template with the
    generation prompt, images expanded into vision tokens); the target is the critique plus the
    end-of-turn token, appended as token ids so the prompt part is byte-identical to inference.
    A critique cut to fit `max_length` is recorded in `truncated` (sample key -> tokens cut), so a
    run reports how many samples it trained on only in part instead of cutting them silently.
    """

    processor: Any
    max_length: int = 4096
    truncated: dict[str, int] = field(default_factory=dict)

    def encode(self, sample: dict[str, Any]) -> dict[str, Any]:
        import torch

        images = [load_image(p) for p in sample["images"]]
        messages, answer = sample["messages"][:-1], sample["messages"][-1]["content"]
        chat = _chat(messages, images)
        prompt_text = self.processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        prompt = self.processor(text=[prompt_text], images=images or None, return_tensors="pt")
        tokenizer = self.processor.tokenizer
        target = tokenizer(answer + "<|im_end|>\n", add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        prompt_ids = prompt["input_ids"][0]
        if len(prompt_ids) >= self.max_length:
            raise ValueError(f"a prompt of {len(prompt_ids)} tokens leaves no room for the critique "
                             f"within max_length={self.max_length}")
        room = self.max_length - len(prompt_ids)
        if len(target) > room:
            self.truncated[sample_key(sample)] = len(target) - room
        target = target[:room]
        input_ids = torch.cat([prompt_ids, target])
        labels = torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), target])
        image_token = getattr(self.processor, "image_token_id", None)
        if image_token is not None:
            labels[input_ids == image_token] = IGNORE_INDEX
        out = {"input_ids": input_ids, "labels": labels}
        if "mm_token_type_ids" in prompt:
            # which tokens are image tokens (1) for M-RoPE; the critique is all text (0)
            out["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"][0], torch.zeros_like(target)])
        for key in ("pixel_values", "image_grid_thw"):
            if key in prompt:
                out[key] = prompt[key]
        return out

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        encoded = [self.encode(s) for s in samples]
        pad_id = self.processor.tokenizer.pad_token_id
        width = max(len(e["input_ids"]) for e in encoded)
        batch = {
            # (batch, width): right-padded; attention 0 and label -100 on padding
            "input_ids": torch.full((len(encoded), width), pad_id, dtype=torch.long),
            "labels": torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long),
            "attention_mask": torch.zeros((len(encoded), width), dtype=torch.long),
        }
        for row, e in enumerate(encoded):
            n = len(e["input_ids"])
            batch["input_ids"][row, :n] = e["input_ids"]
            batch["labels"][row, :n] = e["labels"]
            batch["attention_mask"][row, :n] = 1
        if all("mm_token_type_ids" in e for e in encoded):
            batch["mm_token_type_ids"] = torch.zeros((len(encoded), width), dtype=torch.long)
            for row, e in enumerate(encoded):
                batch["mm_token_type_ids"][row, :len(e["mm_token_type_ids"])] = e["mm_token_type_ids"]
        if any("pixel_values" in e for e in encoded):
            # (total patches, patch dim) and (images, 3): every sample's images, concatenated in order
            batch["pixel_values"] = torch.cat([e["pixel_values"] for e in encoded if "pixel_values" in e])
            batch["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in encoded if "image_grid_thw" in e])
        return batch


def load_sft_records(path: str | Path) -> list[dict[str, Any]]:
    records = list(read_jsonl(path))
    if not records:
        raise ValueError(f"no SFT samples in {path}: did the filter keep any rationale?")
    return records
