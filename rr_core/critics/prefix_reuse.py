"""Prefix KV reuse: prefill the part of a batch that every row shares once, not once per row.

Which part is shared follows from the prompt layout the checkpoints were trained with (system
text, then the request, then the images, then the rubric; see assets/prompts). Two *different*
requests share only the system text and the template's first words, about 4% of a 2,326-token
prompt: not worth a cache. But the batches the product sends most often are rows of *one* request:
the K candidates of a round, an RL group of G samples of one prompt. Their rows are identical up to
the first candidate image, and for an edit that includes the source image (784 tokens under the
checkpoints' 802,816-pixel budget, plus its vision-tower pass). This module finds that prefix,
runs it once at batch 1, copies its keys and values into every row of the static cache, prefills
the rest of every row, and leaves the prompt's last token to `generate`, so decoding, logits
processors, stopping and streaming run exactly as before.

Positions: Qwen3-VL's 3D M-RoPE positions depend on every image of the full prompt, so they are
computed once over the full rows (`get_rope_index`), sliced for the two prefill passes and handed
to `generate` for the rest, in the layout its own prefill would make (so the compiled decode step
sees the same inputs whichever path a batch took). Only Qwen3-VL models take this path (a
Qwen2.5-VL student has the same position function but is untested here); others, left-padded
batches (rows of different lengths) and short prefixes use the normal one.
"""

from __future__ import annotations

import inspect
from typing import Any

MIN_SHARED_TOKENS = 64  # below this, a second forward pass costs more than the prefill it saves
SUPPORTED_MODEL_TYPES = ("qwen3_vl",)  # the checkpoints' family, tested token for token


def supports_prefix_reuse(model) -> bool:
    """True for models whose positions this module computes and the tests check (Qwen3-VL)."""
    inner = getattr(model, "model", None)
    rope_index = getattr(inner, "get_rope_index", None)
    return (getattr(model.config, "model_type", "") in SUPPORTED_MODEL_TYPES and rope_index is not None
            and "mm_token_type_ids" in inspect.signature(rope_index).parameters)


def image_spans(token_types) -> list[tuple[int, int]]:
    """[start, end) token ranges of each image in one row (runs of mm_token_type_ids == 1)."""
    spans, start = [], None
    for position, kind in enumerate(token_types.tolist()):
        if kind == 1 and start is None:
            start = position
        elif kind != 1 and start is not None:
            spans.append((start, position))
            start = None
    if start is not None:
        spans.append((start, len(token_types)))
    return spans


def _row_images(kwargs: dict[str, Any], rows: int) -> list[list[int]]:
    """For each row, the numbers of its images in the batch's flat image list, in order."""
    numbers, next_number = [], 0
    for row in range(rows):
        count = len(image_spans(kwargs["mm_token_type_ids"][row]))
        numbers.append(list(range(next_number, next_number + count)))
        next_number += count
    return numbers


def _pixel_slices(grid) -> list[slice]:
    """The rows of pixel_values holding each image (images are stored one after another)."""
    slices, offset = [], 0
    for patches in grid.prod(dim=1).tolist():
        slices.append(slice(offset, offset + patches))
        offset += patches
    return slices


def shared_prefix_length(kwargs: dict[str, Any]) -> int:
    """Tokens at the start of every row that are identical, images included (0 when rows differ in length).

    Image placeholder tokens look alike whatever the picture, so an image counts as shared only if
    its pixels are equal in every row; the prefix ends before the first image that is not.
    """
    import torch

    input_ids = kwargs["input_ids"]
    rows, length = input_ids.shape
    mask = kwargs.get("attention_mask")
    if rows < 2 or (mask is not None and not bool(mask.all())):
        return 0
    differs = (input_ids != input_ids[:1]).any(dim=0).nonzero()
    prefix = int(differs[0]) if len(differs) else length
    if "pixel_values" not in kwargs or kwargs.get("mm_token_type_ids") is None:
        return prefix
    pixels, where = kwargs["pixel_values"], _pixel_slices(kwargs["image_grid_thw"])
    images = _row_images(kwargs, rows)
    for index, (start, end) in enumerate(image_spans(kwargs["mm_token_type_ids"][0])):
        if start >= prefix:
            break
        first = pixels[where[images[0][index]]]
        same = end <= prefix and all(torch.equal(first, pixels[where[images[row][index]]]) for row in range(1, rows))
        if not same:
            return start
    return prefix


def prefill_shared_prefix(model, kwargs: dict[str, Any], cache, cache_argument: str,
                          min_shared_tokens: int = MIN_SHARED_TOKENS) -> tuple[dict[str, Any], int] | None:
    """Fill `cache` (empty, sized for the batch) with every row's prompt but its last token.

    Returns the generate kwargs for the rest (the pixels dropped: the cache holds the images) and
    the shared prefix length, or None when the batch has no prefix worth sharing and should take
    the normal path.
    """
    import torch
    from transformers import DynamicCache

    if not supports_prefix_reuse(model):
        return None
    input_ids = kwargs["input_ids"]
    rows, length = input_ids.shape
    prefix = min(shared_prefix_length(kwargs), length - 1)
    if prefix < min_shared_tokens:
        return None
    end = length - 1  # generate feeds the last prompt token itself and predicts the first new one
    token_types = kwargs.get("mm_token_type_ids")
    has_images = "pixel_values" in kwargs and token_types is not None
    text_positions = torch.arange(length, device=input_ids.device).expand(1, rows, length)
    if has_images:
        positions, rope_deltas = model.model.get_rope_index(
            input_ids, mm_token_type_ids=token_types, image_grid_thw=kwargs["image_grid_thw"],
            attention_mask=kwargs.get("attention_mask"))
    else:
        positions = text_positions.expand(3, rows, length)
        rope_deltas = torch.zeros(rows, 1, dtype=torch.long, device=input_ids.device)
    positions = torch.cat([text_positions, positions.to(input_ids.device)])  # [text, t, h, w], as generate passes

    # 1. The shared prefix once, at batch 1, with the images it holds.
    row_images = _row_images(kwargs, rows) if has_images else [[] for _ in range(rows)]
    prefix_images = sum(1 for _, stop in image_spans(token_types[0]) if stop <= prefix) if has_images else 0
    scratch = DynamicCache(config=model.config)
    model(**_pass_inputs(kwargs, rows=slice(0, 1), tokens=slice(0, prefix), positions=positions,
                         images=row_images, image_range=slice(0, prefix_images)),
          **{cache_argument: scratch}, use_cache=True, logits_to_keep=1)
    # 2. Its keys and values into every row of the static cache.
    for layer_index, layer in enumerate(scratch.layers):
        cache.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), layer_index)
    # 3. The rest of every row but the last token, with the images after the prefix.
    if end > prefix:
        model(**_pass_inputs(kwargs, rows=slice(0, rows), tokens=slice(prefix, end), positions=positions,
                             images=row_images, image_range=slice(prefix_images, None)),
              **{cache_argument: cache}, use_cache=True, logits_to_keep=1)
    model.model.rope_deltas = rope_deltas  # what generate's own prefill leaves for the decode steps
    # Only the pixels are dropped (the cache holds the images): generate passes the token types (and,
    # in transformers 5.17, the image grid) to every decode step of a normal call, and the compiled
    # step must see the same arguments either way, or it compiles twice.
    rest = {key: value for key, value in kwargs.items() if key != "pixel_values"}
    rest[cache_argument] = cache
    # The full rows' positions, [text, t, h, w] as generate computes them for a fresh call: left to
    # itself, generate continuing a filled cache passes one row of text positions instead, and the
    # compiled decode step would see a second input shape.
    rest["position_ids"] = positions
    return rest, prefix


def _pass_inputs(kwargs: dict[str, Any], rows: slice, tokens: slice, positions,
                 images: list[list[int]], image_range: slice) -> dict[str, Any]:
    """The forward inputs for `rows` x `tokens`: ids, mask, positions and the images inside those tokens."""
    import torch

    inputs = {"input_ids": kwargs["input_ids"][rows, tokens], "position_ids": positions[:, rows, tokens]}
    mask = kwargs.get("attention_mask")
    if mask is not None:
        inputs["attention_mask"] = mask[rows, :tokens.stop]
    chosen = [number for row_images in images[rows] for number in row_images[image_range]]
    if chosen:
        where = _pixel_slices(kwargs["image_grid_thw"])
        inputs["pixel_values"] = torch.cat([kwargs["pixel_values"][where[number]] for number in chosen])
        inputs["image_grid_thw"] = kwargs["image_grid_thw"][chosen]
        inputs["mm_token_type_ids"] = kwargs["mm_token_type_ids"][rows, tokens]
    return inputs
