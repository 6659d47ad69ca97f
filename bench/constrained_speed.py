"""Decoding speed with and without the critique grammar, side by side in one run.

    python -m bench.constrained_speed                 # CPU: the tiny offline critic
    python -m bench.constrained_speed --real-shape    # CUDA: random bf16 weights at the Qwen3-VL-8B shape
    python -m bench.constrained_speed --mask-only     # no model: the grammar alone at Qwen's vocabulary size

Each batch size runs three generations, interleaved and best of `--repeats`: the constrained one
(sampling at temperature 1 under the grammar until it ends), an unconstrained one forced to the
same number of new tokens, and a one-token prefill. Per-token time is (total - prefill) / (new - 1),
so the overhead is the grammar's own per-token cost: the xgrammar matcher's mask and its
application to the logits ("mask ms" is the time inside the logits processor). `--decode fast`
(default) decodes through the critics' fast path (kept static cache; compiled on CUDA), the path
the GPU target is about; `--decode plain` through plain `generate`. `--caps` picks the grammar's
length caps: the defaults, none ("unbounded": the configuration for the real checkpoints), or both
side by side (default).

With --real-shape the grammar is compiled for a synthetic 151,643-token vocabulary (Qwen's size;
no real tokenizer can be downloaded here), so xgrammar checks as many tokens per step as it would
for the real checkpoints; the tiny run uses the tiny critic's own 872-token tokenizer. --mask-only
times the processor alone (fill and CPU apply) on random logits at that vocabulary, on any machine,
and shows how one row's fill time spreads over the steps of a critique.
Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import random
import statistics
import time

import torch
from PIL import Image

from bench.critic_speed import device_name, sync
from rr_core.critics.constrained import GrammarLogitsProcessor
from rr_core.grammar import SectionCaps, compile_for_tokenizer_info, compiled_grammar, max_tokens_for
from rr_core.prompts import build_pointwise
from rr_core.rubric import Task

QWEN_REGULAR_TOKENS = 151_643  # Qwen2/2.5/3 tokenizers: regular tokens before the special ones
QWEN_IM_END = QWEN_REGULAR_TOKENS + 2  # <|im_end|>'s place in Qwen's vocabulary
UNBOUNDED_NEW_TOKENS = 512  # random weights never end an unbounded field: decode this many instead


class TimedProcessor(GrammarLogitsProcessor):
    """The grammar processor, adding up the seconds spent in it."""

    seconds = 0.0

    def __call__(self, input_ids, scores):
        start = time.perf_counter()
        scores = super().__call__(input_ids, scores)
        if scores.is_cuda:
            torch.cuda.synchronize()
        TimedProcessor.seconds += time.perf_counter() - start
        return scores


def synthetic_vocab(size: int, seed: int = 0) -> list[str]:
    """Word pieces shaped like a BPE vocabulary: every printable ASCII character, then pieces of 2-12
    letters (half with a leading space, some capitalised), digits and punctuation runs."""
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
               1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
    vocab = [chr(c) for c in range(32, 127)] + ["\n", "\n\n", "##", " ##", "# ", ":", ": "]
    seen = set(vocab)
    while len(vocab) < size:
        kind = rng.random()
        if kind < 0.9:
            word = "".join(rng.choices(letters, weights, k=rng.randint(2, 12)))
            word = word.capitalize() if rng.random() < 0.2 else word
            piece = (" " if rng.random() < 0.5 else "") + word
        elif kind < 0.95:
            piece = "".join(rng.choices("0123456789", k=rng.randint(1, 3)))
        else:
            piece = "".join(rng.choices(".,;:!?\"'()-*/ ", k=rng.randint(1, 4)))
        if piece not in seen:
            seen.add(piece)
            vocab.append(piece)
    return vocab


UNBOUNDED = SectionCaps(analysis=None, justification=None, summary=None, comments=None, refined=None)
CAPS = {"default": SectionCaps(), "unbounded": UNBOUNDED}


def tiny_setup(task: Task, mode: str, prompt_tokens: int):
    """The tiny critic, a function giving a batch of real critique prompts, and one compiling the grammar."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rr_core.critics.tiny import ensure_tiny_critic

    path = ensure_tiny_critic()
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    source = Image.new("RGB", (64, 64), (40, 40, 200)) if task == Task.EDIT else None
    chat = build_pointwise(task, "a red fox in the snow", image, source_image=source).to_transformers()

    def inputs(batch: int) -> dict:
        return dict(processor.apply_chat_template([chat] * batch, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True, return_tensors="pt",
                                                  processor_kwargs={"padding": True}))

    eos = model.generation_config.eos_token_id
    vocab_size = model.config.get_text_config().vocab_size

    def grammar_for(caps: SectionCaps):
        return compiled_grammar(processor, task, mode, caps, vocab_size=vocab_size, stop_token_ids=eos)

    label = f"tiny Qwen3-VL (fp32), its {len(processor.tokenizer)}-token tokenizer"
    return model, inputs, grammar_for, eos, label


def real_setup(task: Task, mode: str, prompt_tokens: int):
    """8B-shaped random weights on the GPU, random prompts, and grammars at a Qwen-sized synthetic vocab."""

    from bench.critic_speed import real_shape_chat_model

    chat_model = real_shape_chat_model()
    model = chat_model.model
    stop = [QWEN_IM_END]

    def grammar_for(caps: SectionCaps):
        grammar, _, compile_s = qwen_sized_grammar(task, mode, caps, model.config.get_text_config().vocab_size)
        print(f"grammar compiled in {compile_s:.1f} s")
        return grammar

    def inputs(batch: int) -> dict:
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, QWEN_REGULAR_TOKENS, (batch, prompt_tokens), generator=generator).cuda()
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    label = (f"Qwen3-VL-8B shape, random bf16; synthetic {QWEN_REGULAR_TOKENS}-token vocab; "
             f"prompt {prompt_tokens} tokens")
    return model, inputs, grammar_for, stop, label


def qwen_sized_grammar(task: Task, mode: str, caps: SectionCaps, vocab_size: int = 151_936):
    """The grammar compiled for synthetic regular tokens, then special tokens up to the padded width."""
    import xgrammar as xgr

    specials = [f"<|special_{i}|>" for i in range(vocab_size - QWEN_REGULAR_TOKENS)]
    vocab = synthetic_vocab(QWEN_REGULAR_TOKENS) + specials
    stop = [QWEN_IM_END]
    info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=vocab_size, stop_token_ids=stop)
    started = time.perf_counter()
    grammar = compile_for_tokenizer_info(info, task, mode, caps)
    return grammar, stop, time.perf_counter() - started


def mask_only(grammar, stop: list[int], batch: int, repeats: int) -> tuple[float, list[float]]:
    """The grammar processor alone at Qwen's vocabulary: best seconds per step, and each step's fill time.

    The next token is the argmax over random logits drawn up front (sampling would be the GPU's job),
    so the CPU time is the processor's: the matcher's fill and the CPU apply of the mask.
    """
    import xgrammar as xgr

    generator = torch.Generator().manual_seed(0)
    pool = torch.randn(16, batch, 151_936, generator=generator)  # (draws, batch, vocab)
    best, fills = float("inf"), []
    for repeat in range(repeats):
        processor = GrammarLogitsProcessor(grammar, batch, stop_token_ids=stop)
        ids = torch.zeros(batch, 1, dtype=torch.long)
        spent, steps = 0.0, 0
        while steps < 400:
            scores = pool[(steps + repeat) % len(pool)].clone()  # (batch, vocab)
            start = time.perf_counter()
            scores = processor(ids, scores)
            spent += time.perf_counter() - start
            ids = torch.cat([ids, scores.argmax(dim=-1, keepdim=True)], dim=1)
            steps += 1
            if all(m.is_terminated() for m in processor.matchers):
                break
        best = min(best, spent / steps)
    # Fill time per step of one row, on the same walk (what varies is the grammar state).
    matcher = xgr.GrammarMatcher(grammar, override_stop_tokens=stop)
    mask = xgr.allocate_token_bitmask(1, 151_936)
    for step in range(400):
        if matcher.is_terminated():
            break
        start = time.perf_counter()
        matcher.fill_next_token_bitmask(mask)
        fills.append(time.perf_counter() - start)
        scores = pool[step % len(pool), :1].clone()
        xgr.apply_token_bitmask_inplace(scores, mask)
        matcher.accept_token(int(scores.argmax()))
    return best, fills


def run(model, inputs, grammar, eos, batch, max_new, repeats, fast=None, seed=0):
    """Best-of-`repeats` seconds for the constrained, unconstrained and prefill runs, and the token count.

    `fast` (a FastDecoder) runs every generate through the critics' fast decode path.
    """
    from transformers import GenerationConfig

    prompt_length = inputs["input_ids"].shape[1]

    def generate(processors, new_tokens, forced):
        torch.manual_seed(seed)
        config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens if forced else None,
                                  do_sample=True, temperature=1.0, top_p=1.0, top_k=0, eos_token_id=eos,
                                  pad_token_id=model.generation_config.pad_token_id)
        kwargs = {**inputs, "generation_config": config, "logits_processor": processors}
        rows = batch
        with torch.inference_mode():
            if fast is not None:
                kwargs, rows = fast.prepare(kwargs)
            out = model.generate(**kwargs)[:rows]
        return out.shape[1] - prompt_length

    best = {"constrained": float("inf"), "plain": float("inf"), "prefill": float("inf"), "mask": float("inf")}
    new = generate([GrammarLogitsProcessor(grammar, batch, stop_token_ids=eos)], max_new, False)  # warm-up
    for _ in range(repeats):
        TimedProcessor.seconds = 0.0
        start = time.perf_counter()
        new = generate([TimedProcessor(grammar, batch, stop_token_ids=eos)], max_new, False)
        sync()
        best["constrained"] = min(best["constrained"], time.perf_counter() - start)
        best["mask"] = min(best["mask"], TimedProcessor.seconds)
        for name, tokens in (("plain", new), ("prefill", 1)):
            start = time.perf_counter()
            generate([], tokens, True)
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-shape", action="store_true", help="8B-shaped random weights (needs CUDA)")
    parser.add_argument("--task", default="edit", choices=[t.value for t in Task])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompt-tokens", type=int, default=1024, help="--real-shape: prompt length")
    parser.add_argument("--mask-only", action="store_true",
                        help="no model: the grammar processor alone on random logits at Qwen's vocabulary")
    parser.add_argument("--caps", choices=["default", "unbounded", "both"], default="both",
                        help="the grammar's length caps: SectionCaps() defaults, none (no length guarantee; "
                             "cheaper to compile and fill), or both side by side")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    parser.add_argument("--decode", choices=["plain", "fast"], default="fast",
                        help="plain model.generate, or the critics' fast decode path (compiled on CUDA)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.real_shape and not torch.cuda.is_available():
        parser.error("--real-shape needs a CUDA GPU")
    task, mode = Task.parse(args.task), "pointwise"
    cap_names = ["default", "unbounded"] if args.caps == "both" else [args.caps]
    if args.mask_only:
        print(f"constrained_speed --mask-only  {datetime.datetime.now().isoformat(timespec='seconds')}  "
              f"{platform.node()}  CPU ({platform.processor() or platform.machine()})")
        for name in cap_names:
            grammar, stop, compile_s = qwen_sized_grammar(task, mode, CAPS[name])
            print(f"{name} caps: grammar compiled for a synthetic {QWEN_REGULAR_TOKENS}-token vocab "
                  f"(padded to 151936) in {compile_s:.1f} s")
            for batch in args.batch_sizes:
                step, fills = mask_only(grammar, stop, batch, args.repeats)
                fills_ms = sorted(f * 1e3 for f in fills)
                spikes = sum(f > 5 for f in fills_ms)
                print(f"  batch {batch}: {step * 1e3:.3f} ms per step (fill + CPU apply) over {len(fills)} steps; "
                      f"one row's fill: median {statistics.median(fills_ms):.3f} ms, "
                      f"p90 {fills_ms[int(0.9 * len(fills_ms))]:.3f} ms, max {fills_ms[-1]:.1f} ms, "
                      f"{spikes} steps over 5 ms ({sum(f for f in fills_ms if f > 5):.0f} ms of "
                      f"{sum(fills_ms):.0f} ms)")
        return
    max_new = max_tokens_for(task, mode, SectionCaps())
    device = device_name()
    now = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"constrained_speed  {now}  {platform.node()}  {device}")
    print(f"torch {torch.__version__}  {task.value} {mode}, sampling T=1, best of {args.repeats}, interleaved")
    setup = real_setup if args.real_shape else tiny_setup
    model, make_inputs, grammar_for, eos, label = setup(task, mode, args.prompt_tokens)
    fast = None
    if args.decode == "fast":
        from rr_core.critics.fast_decode import FastDecoder

        fast = FastDecoder(model, "auto" if torch.cuda.is_available() else "static", stop_id=min(eos))
        fast.prefix_reuse = False  # the prompts here are random ids; this measures decoding
    print(f"decode path: {args.decode}" + (f" ({fast.mode}: {fast.status})" if fast else " (plain generate)"))
    grammars = {name: grammar_for(CAPS[name]) for name in cap_names}
    print(f"{'caps':>9} {'batch':>5} {'new tok':>8} {'free tok/s':>11} {'grammar tok/s':>14} {'free ms/tok':>12} "
          f"{'grammar ms/tok':>15} {'overhead':>9} {'mask ms/tok':>12} {'mask share':>11}")
    for batch in args.batch_sizes:
        for name, grammar in grammars.items():
            limit = max_new if name == "default" else UNBOUNDED_NEW_TOKENS
            best, new = run(model, make_inputs(batch), grammar, eos, batch, limit, args.repeats, fast)
            free_step = (best["plain"] - best["prefill"]) / (new - 1)
            grammar_step = (best["constrained"] - best["prefill"]) / (new - 1)
            mask_step = best["mask"] / new
            print(f"{name:>9} {batch:>5} {new:>8} {batch / free_step:>11.1f} {batch / grammar_step:>14.1f} "
                  f"{free_step * 1e3:>12.2f} {grammar_step * 1e3:>15.2f} {grammar_step / free_step - 1:>9.1%} "
                  f"{mask_step * 1e3:>12.3f} {mask_step / grammar_step:>11.1%}")
    print(f"model: {label}")


if __name__ == "__main__":
    main()
