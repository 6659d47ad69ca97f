"""Fast critique decoding: a kept, bucketed static KV cache and a compiled (CUDA-graph) decode step.

Why `model.generate` with our own `StaticCache` rather than a hand-written loop: generate already
does what a Qwen3-VL decode must get right, through the model's own code: the prefill with images
runs the normal (uncompiled) forward and computes the 3D M-RoPE positions and `rope_deltas`
(`_prepare_position_ids_for_generation`, `get_rope_index`); each decode step is the single-token
forward that generate compiles (`compile_config`, mode "reduce-overhead" = CUDA graphs) once the
cache is a compileable `StaticCache`; logits processors (the grammar), stopping and streamers work
unchanged. What plain `cache_implementation="static"` lacks, and this module adds:

1. the cache is *kept*: one `StaticCache` per (batch bucket, length bucket), reset before each call,
   so its tensors keep their addresses and the captured CUDA graphs replay instead of re-recording;
2. batches are padded to a bucket (1, 2, 4, 8, 16, 32 rows; padding rows repeat the last request and
   are forced to stop at once) and the cache length is rounded up to `length_bucket`, so a handful
   of graphs serve every critique; the step is compiled with dynamic shapes, so those buckets share
   two compiles (one row, and the rest) and a bucket the warm-up did not see costs a graph capture
   on first use rather than a compile on a user's request;
3. warm-up at load time (`FastDecoder.warmup`, runnable in a background thread) with a status the
   app can show, and the compiled artifacts cached under rr_core.paths.cache_dir() across restarts;
4. a fallback to the plain path, with identical outputs, where compiling is unavailable (CPU,
   ZeroGPU, quantized weights) or fails; `status` then says why.

Greedy outputs equal the plain path's token for token: rows are independent under left padding,
the padding rows never touch the real ones, and the static cache's masked-out tail contributes
nothing to attention (tests/critics/test_fast_decode.py checks it on the tiny model).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rr_core.critics.prefix_reuse import prefill_shared_prefix
from rr_core.paths import cache_dir

logger = logging.getLogger(__name__)

FAST_DECODE_MODES = ("off", "static", "compiled", "auto")
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)
LENGTH_BUCKET = 512


def batch_bucket(rows: int, buckets: Sequence[int] = BATCH_BUCKETS) -> int:
    """The smallest bucket holding `rows`; above the largest bucket the batch is used as is."""
    if rows < 1:
        raise ValueError(f"a batch needs at least one row, got {rows}")
    return next((b for b in sorted(buckets) if b >= rows), rows)


def length_bucket(tokens: int, bucket: int = LENGTH_BUCKET) -> int:
    """`tokens` rounded up to a multiple of `bucket`, so nearby prompt lengths share one cache."""
    return -(-tokens // bucket) * bucket


def compile_unavailable_reason(model) -> str:
    """Why the compiled decode cannot run here ("" when it can)."""
    import torch

    if model.device.type != "cuda":
        return f"compile needs CUDA, the model is on {model.device.type}"
    if os.environ.get("SPACES_ZERO_GPU"):
        return "ZeroGPU hands out the GPU per call; CUDA graphs cannot outlive it"
    if getattr(model, "hf_quantizer", None) is not None and not model.hf_quantizer.is_compileable:
        return "the quantized weights cannot be compiled"
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    return ""


def cache_argument(model) -> str:
    """The generate keyword for a KV cache: `cache` from transformers 5.2x, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class _PaddedRows:
    """Applies the batch's logits processors to the real rows and forces padding rows to stop at once.

    The processors (e.g. one grammar matcher per row) were built for the real rows only.
    """

    def __init__(self, processors: Sequence[Callable], real_rows: int, stop_id: int) -> None:
        self.processors = list(processors)
        self.real_rows = real_rows
        self.stop_id = stop_id

    def __call__(self, input_ids, scores):
        real = scores[:self.real_rows]
        for processor in self.processors:
            real = processor(input_ids[:self.real_rows], real)
        scores = scores.clone()
        scores[:self.real_rows] = real
        scores[self.real_rows:] = float("-inf")
        scores[self.real_rows:, self.stop_id] = 0.0
        return scores


class _RealRowsStreamer:
    """Passes a streamer only the real rows of a padded batch."""

    def __init__(self, streamer, real_rows: int) -> None:
        self.streamer = streamer
        self.real_rows = real_rows

    def put(self, value) -> None:
        self.streamer.put(value[:self.real_rows])

    def end(self) -> None:
        self.streamer.end()


class FastDecoder:
    """Decides, per generate call, whether and how to use the kept static cache and the compiled step.

    mode: "off" (plain generate), "static" (kept bucketed static cache, no compile: works anywhere,
        used by the CPU tests), "compiled" (static + CUDA-graph decode step; falls back to plain where
        unavailable), "auto" (compiled where available, else plain).
    status: "off", "not warmed up", "warming up", "ready", "fallback: <why>" or "failed: <why>".
    """

    def __init__(self, model, mode: str = "auto", stop_id: int = 0,
                 batch_buckets: Sequence[int] = BATCH_BUCKETS, length_bucket_tokens: int = LENGTH_BUCKET,
                 artifacts_dir: Path | str | None = None, prefix_reuse: bool = True,
                 dynamic_shapes: bool = True) -> None:
        if mode not in FAST_DECODE_MODES:
            raise ValueError(f"fast_decode must be one of {FAST_DECODE_MODES}, got {mode!r}")
        if length_bucket_tokens < 1:
            raise ValueError(f"length_bucket_tokens must be >= 1, got {length_bucket_tokens}")
        self.model = model
        self.requested = mode
        self.stop_id = stop_id
        self.batch_buckets = tuple(sorted(batch_buckets))
        self.length_bucket_tokens = length_bucket_tokens
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else cache_dir() / "compile"
        self.caches: dict[tuple[int, int], Any] = {}
        self.warmup_s: float | None = None
        self.reserve_new_tokens = 0  # the cache holds at least this many new tokens (warm-up decodes fewer)
        self.prefix_reuse = prefix_reuse
        self.dynamic_shapes = dynamic_shapes
        self.dynamic_failed = False  # set when a dynamic-shape compile failed: static shapes from then on
        self.shared_prefix_tokens = 0  # of the last call: prompt tokens prefilled once for all rows
        self._status_lock = threading.Lock()
        self.mode, self.status = self._resolve(mode)

    def _resolve(self, mode: str) -> tuple[str, str]:
        if mode == "off":
            return "off", "off"
        if mode == "static":
            return "static", "ready"
        reason = compile_unavailable_reason(self.model)
        if reason:
            if mode == "compiled":
                logger.warning("fast decode falls back to plain generate: %s", reason)
            return "off", f"fallback: {reason}"
        return "compiled", "not warmed up"

    @property
    def active(self) -> bool:
        return self.mode != "off"

    def set_status(self, status: str) -> None:
        with self._status_lock:
            self.status = status

    def fall_back(self, error: BaseException) -> None:
        """After a compile or capture error: plain generate from now on, saying why."""
        logger.exception("fast decode failed; falling back to plain generate")
        self.mode = "off"
        self.caches.clear()
        self.set_status(f"failed: {type(error).__name__}: {error}")

    # --- per call ----------------------------------------------------------------------------

    def prepare(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Generate kwargs for the fast path, and how many rows are real (the rest are padding).

        Pads the batch to its bucket, attaches the kept static cache for the bucketed length and,
        in compiled mode, the compile config. `kwargs` is what ChatModel.generate_kwargs built.
        """
        from transformers import LogitsProcessorList

        kwargs = dict(kwargs)
        input_ids = kwargs["input_ids"]
        rows, prompt_length = input_ids.shape
        config = kwargs["generation_config"]
        bucket = batch_bucket(rows, self.batch_buckets)
        if bucket > rows:
            # 1. padding rows repeat the last request (any valid row would do; they stop at once)
            if "pixel_values" in kwargs and int((kwargs["mm_token_type_ids"][-1] == 1).sum()):
                merge = self.model.config.vision_config.spatial_merge_size
                kwargs.update(_repeat_last_images(kwargs, merge, bucket - rows))
            for key in ("input_ids", "attention_mask", "mm_token_type_ids"):
                if key in kwargs:
                    kwargs[key] = torch_cat_rows(kwargs[key], kwargs[key][-1:], bucket - rows)
        # 2. the logits processors see only the real rows; padding rows stop at once
        processors = list(kwargs.pop("logits_processor", None) or [])
        if bucket > rows or processors:
            kwargs["logits_processor"] = LogitsProcessorList([_PaddedRows(processors, rows, self.stop_id)])
        if bucket > rows and "streamer" in kwargs:
            kwargs["streamer"] = _RealRowsStreamer(kwargs["streamer"], rows)
        # 3. the kept static cache, sized for the prompt plus the critique, rounded to a bucket
        new_tokens = max(config.max_new_tokens, self.reserve_new_tokens)
        length = length_bucket(prompt_length + new_tokens, self.length_bucket_tokens)
        cache = self._cache(bucket, length)
        cache.reset()
        # 4. rows of one request (K candidates, an RL group): their shared prefix is prefilled once
        argument = cache_argument(self.model)
        reused = None
        if self.prefix_reuse:
            try:
                reused = prefill_shared_prefix(self.model, kwargs, cache, argument)
            except Exception:  # a model quirk must cost speed, not the critique: prefill every row
                logger.exception("prefix reuse failed; this decoder prefills every row from now on")
                self.prefix_reuse = False
                cache.reset()
        if reused is None:
            kwargs[argument] = cache
            self.shared_prefix_tokens = 0
        else:
            kwargs, self.shared_prefix_tokens = reused
        config.cache_implementation = None
        if self.mode == "compiled":
            config.compile_config = self._compile_config()
            config.disable_compile = False
        else:
            config.disable_compile = True
        return kwargs, rows

    def _compile_config(self):
        """CUDA graphs on CUDA; elsewhere (only where a test forces compiling) inductor without graphs.

        With `dynamic_shapes` the step is compiled with symbolic batch and cache length: torch
        specialises one row, so two compiles (one row; any other batch and length) serve every
        bucket, and a new bucket costs a CUDA-graph capture, not a compile (measured on CPU with
        inductor: 2 compiles for 5 batch/length buckets, against 5 with static shapes).
        """
        from transformers import CompileConfig

        dynamic = self.uses_dynamic_shapes
        if self.model.device.type == "cuda":
            return CompileConfig(fullgraph=False, dynamic=dynamic, mode="reduce-overhead")
        config = CompileConfig(fullgraph=False, dynamic=dynamic, mode="default")
        config._compile_all_devices = True  # transformers compiles on CUDA-like devices only, unless told
        return config

    def _cache(self, rows: int, length: int):
        from transformers import StaticCache

        key = (rows, length)
        if key not in self.caches:
            logger.info("allocating a static KV cache for %d rows x %d tokens", rows, length)
            self.caches[key] = StaticCache(config=self.model.config, max_cache_len=length)
        return self.caches[key]

    # --- warm-up and the compiled-artifact cache ---------------------------------------------

    def artifact_path(self) -> Path:
        """One file per model shape, torch version and GPU: the compiled kernels for this setup."""
        import torch

        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        text = self.model.config.get_text_config()
        key = f"{type(self.model).__name__}|{text.to_json_string()}|{self.model.dtype}|{torch.__version__}|{device}"
        return self.artifacts_dir / f"decode-{hashlib.sha256(key.encode()).hexdigest()[:16]}.bin"

    def load_artifacts(self) -> bool:
        """Load compiled kernels saved by an earlier process (torch.compiler mega-cache), if any."""
        import torch

        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "torchinductor"))
        path = self.artifact_path()
        if not path.is_file() or not hasattr(torch.compiler, "load_cache_artifacts"):
            return False
        try:
            torch.compiler.load_cache_artifacts(path.read_bytes())
        except Exception:  # a stale or foreign cache only costs a fresh compile
            logger.warning("ignoring unreadable compile cache %s", path, exc_info=True)
            return False
        return True

    def save_artifacts(self) -> None:
        import torch

        if not hasattr(torch.compiler, "save_cache_artifacts"):
            return
        saved = torch.compiler.save_cache_artifacts()
        if saved is None:
            return
        path = self.artifact_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(saved[0])
        tmp.replace(path)

    def warmup(self, run: Callable[[int], Any], batch_sizes: Sequence[int]) -> str:
        """Compile and capture the decode step for each batch bucket in `batch_sizes`; returns the status.

        `run(rows)` must decode a few tokens for a batch of `rows` requests through the normal
        path (so the shapes match real critiques). Errors fall back to the plain path.
        """
        if self.mode != "compiled":
            return self.status
        self.set_status("warming up")
        start = time.perf_counter()
        try:
            self._warm(run, batch_sizes)
        except Exception as error:
            if not self.uses_dynamic_shapes:
                self.fall_back(error)
                return self.status
            # A torch whose compiler cannot do this model with symbolic sizes may still do it with
            # fixed ones: one compile per bucket is slower to warm up but faster than plain generate.
            logger.warning("dynamic-shape compile failed (%s: %s); warming up with static shapes",
                           type(error).__name__, error)
            self.dynamic_failed = True
            self.caches.clear()
            try:
                self._warm(run, batch_sizes)
            except Exception as second:
                self.fall_back(second)
                return self.status
        self.warmup_s = time.perf_counter() - start
        self.set_status("ready")
        return self.status

    def _warm(self, run: Callable[[int], Any], batch_sizes: Sequence[int]) -> None:
        self.load_artifacts()
        for rows in sorted({batch_bucket(b, self.batch_buckets) for b in batch_sizes}):
            for _ in range(3):  # compile, record the CUDA graph, replay it
                run(rows)
        self.save_artifacts()

    @property
    def uses_dynamic_shapes(self) -> bool:
        return self.dynamic_shapes and not self.dynamic_failed

    def warmup_in_background(self, run: Callable[[int], Any], batch_sizes: Sequence[int]) -> threading.Thread:
        """`warmup` in a daemon thread, so the app can show its status while it compiles."""
        thread = threading.Thread(target=self.warmup, args=(run, batch_sizes), name="critic-warmup", daemon=True)
        if self.mode == "compiled":
            self.set_status("warming up")
        thread.start()
        return thread


def torch_cat_rows(tensor, row, count: int):
    """`tensor` with `row` (shape [1, ...]) appended `count` times along the batch dimension."""
    import torch

    return torch.cat([tensor, row.expand(count, *row.shape[1:])], dim=0)


def _repeat_last_images(kwargs: dict[str, Any], merge_size: int, count: int) -> dict[str, Any]:
    """pixel_values / image_grid_thw with the last row's images appended `count` more times.

    Images are stored in row order, so the last row's images are the trailing grid entries whose
    merged-token counts add up to the last row's image tokens.
    """
    import torch

    grid = kwargs["image_grid_thw"]
    last_row_tokens = int((kwargs["mm_token_type_ids"][-1] == 1).sum())
    tokens_per_image = (grid.prod(dim=1) // merge_size**2).tolist()
    n_images, total = 0, 0
    while total < last_row_tokens:
        n_images += 1
        total += tokens_per_image[-n_images]
    patches = int(grid[len(grid) - n_images:].prod(dim=1).sum())
    last_grid = grid[len(grid) - n_images:]
    last_pixels = kwargs["pixel_values"][len(kwargs["pixel_values"]) - patches:]
    return {
        "image_grid_thw": torch.cat([grid] + [last_grid] * count, dim=0),
        "pixel_values": torch.cat([kwargs["pixel_values"]] + [last_pixels] * count, dim=0),
    }
