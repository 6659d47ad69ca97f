"""Grammar-constrained decoding for transformers: a logits processor that keeps every critique parseable.

`grammar_logits_processors` is what a transformers critic adds to `model.generate` when its
config turns the grammar on: one `GrammarLogitsProcessor` per generate call, one xgrammar matcher
per batch row. It is only a logits processor, so greedy decoding, sampling and TextIteratorStreamer
work unchanged; batches may be left-padded (the matcher sees only the tokens generated after the
prompt).

Trade-off for the real checkpoints (figures from bench/constrained_speed.py, 2026-11-26, a 2-core
x86 VM shared with other jobs, no GPU drawn for this task):
- What it buys: every critique parses with status ok and ends within `max_tokens_for` tokens; no
  retries, no "failed" rows in a batch, no runaway generations.
- Per-token cost: the matcher's mask is computed on the CPU, one row after another (rows in
  parallel threads with BatchGrammarMatcher), and not overlapped with the GPU step. Tiny critic
  (872-token vocabulary): +5% per token at batch 1 (707 -> 672 tok/s), +8% at batch 3; 0.08 ms of
  mask per token. At Qwen's 151,936-entry vocabulary (synthetic, --mask-only): 0.8-1.8 ms per step
  at batch 1 (fill plus a CPU apply that a GPU does with a Triton kernel), 6-8 ms at batch 4 on one
  thread. Against an 8B decode step of roughly 15-30 ms in transformers that is a few per cent at
  batch 1 and more at larger batches on few cores: an estimate, not a GPU measurement.
- Compile cost: each bounded character position costs xgrammar a mask pass over the vocabulary, so
  the default caps compile in about 8 s at Qwen's vocabulary on this VM (once per tokenizer, task
  and mode per process; cached); unbounded fields (SectionCaps(None, ...)) compile in 0.5 s.
- Text quality: the default caps (64-character justifications) are for the tiny critic and for
  short critiques; the real checkpoints write several sentences per dimension, so give them larger
  caps (e.g. 600 per justification, paying compile time) or unbounded fields (paying the length
  guarantee), and expect a small shift off the trained distribution where the grammar overrides
  the model's formatting habits (bold headings, score before justification, a leading quote in the
  refined request).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from rr_core.grammar import SectionCaps, compile_ebnf, critique_grammar
from rr_core.rubric import Task


def _bitmask_row(token_ids: Iterable[int], words: int) -> torch.Tensor:
    """One bitmask row (xgrammar's layout: bit j of int32 word i is token 32 * i + j) allowing `token_ids`."""
    bits = [0] * words
    for token in token_ids:
        bits[token // 32] |= 1 << (token % 32)
    return torch.tensor([b - (1 << 32) if b >= 1 << 31 else b for b in bits], dtype=torch.int32)


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks every token the critique grammar does not allow next, row by row.

    One instance serves one `generate` call (build a fresh one per call, as the critics do).
    `compiled_grammar` is an xgrammar CompiledGrammar whose vocabulary is the model's logits width
    (`rr_core.grammar.compiled_grammar(..., vocab_size=model vocab)`), or a list of them, one per
    row, for a batch that mixes tasks or modes; logits wider than that vocabulary are masked past it.
    A None in the list leaves that row unconstrained (rr_core.serve batches requests with and
    without a grammar together); at least one row needs a grammar. A row that has ended (its
    matcher accepted a stop token) gets only the stop tokens allowed, so a batch keeps a finite
    distribution in every row.
    """

    def __init__(self, compiled_grammar: Any, batch_size: int | None = None,
                 stop_token_ids: Iterable[int] | None = None) -> None:
        import xgrammar as xgr

        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(compiled_grammar, (list, tuple)):
            if batch_size is not None and len(compiled_grammar) != batch_size:
                raise ValueError(f"got {len(compiled_grammar)} grammars for batch size {batch_size}")
            present = [g for g in compiled_grammar if g is not None]
            if not present:
                raise ValueError("at least one row needs a grammar")
            if len({int(g.tokenizer_info.vocab_size) for g in present}) != 1:
                raise ValueError("the grammars of one batch must be compiled for the same vocabulary")
            batch_size = len(compiled_grammar)
            first = present[0]
        else:
            first = compiled_grammar
        self.compiled_grammar = compiled_grammar
        self.batch_size = batch_size
        info = first.tokenizer_info
        self.vocab_size = int(info.vocab_size)
        self.stop_token_ids = [int(t) for t in (stop_token_ids if stop_token_ids is not None
                                                else info.stop_token_ids)]
        if not self.stop_token_ids:
            raise ValueError("the grammar needs at least one stop token id")
        self._xgr = xgr
        self.matchers: list = []
        self._length = 0
        self._bitmask: torch.Tensor | None = None
        self._stop_row: torch.Tensor | None = None
        self._batch_matcher = None
        self._bound_rows: list[int] = []

    def _start(self, batch: int, length: int) -> None:
        """First call of a generation: the prompt is in, nothing generated yet."""
        if self.batch_size is not None and batch != self.batch_size:
            raise ValueError(f"the grammar processor was built for batch size {self.batch_size}, "
                             f"got {batch} rows (num_return_sequences and beams need one per row)")
        xgr = self._xgr
        grammars = (self.compiled_grammar if isinstance(self.compiled_grammar, (list, tuple))
                    else [self.compiled_grammar] * batch)
        self.matchers = [None if grammar is None
                         else xgr.GrammarMatcher(grammar, override_stop_tokens=self.stop_token_ids)
                         for grammar in grammars]
        self._bitmask = xgr.allocate_token_bitmask(batch, self.vocab_size)
        self._batch_matcher = xgr.BatchGrammarMatcher() if batch > 1 else None
        self._stop_row = _bitmask_row(self.stop_token_ids, self._bitmask.shape[1])
        self._bound_rows = [row for row, matcher in enumerate(self.matchers) if matcher is not None]
        for row in set(range(batch)) - set(self._bound_rows):  # every bit set: the row stays as it is
            self._bitmask[row] = -1
        self._length = length

    def _advance(self, input_ids: torch.LongTensor) -> None:
        """Feed every live row the tokens generated since the last call (one, in plain decoding)."""
        length = input_ids.shape[1]
        if length <= self._length:
            raise RuntimeError("GrammarLogitsProcessor serves one generate call; build a new one per call")
        new_tokens = input_ids[:, self._length:].tolist()  # (batch, new)
        self._length = length
        for row, (matcher, tokens) in enumerate(zip(self.matchers, new_tokens)):
            if matcher is None:
                continue
            for token in tokens:
                if matcher.is_terminated():
                    break
                if not matcher.accept_token(token):
                    raise RuntimeError(f"row {row}: token {token} is not allowed by the critique grammar "
                                       "(a logits processor after the grammar un-masked it?)")

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # 1. Start the matchers on the first call, else feed them the last generated token.
        batch = input_ids.shape[0]
        if not self.matchers:
            self._start(batch, input_ids.shape[1])
        else:
            self._advance(input_ids)
        # 2. Fill the bitmask (batch, ceil(vocab / 32)): the grammar's next tokens (rows in parallel
        #    threads), or stop tokens only for rows that have ended.
        live = [row for row in self._bound_rows if not self.matchers[row].is_terminated()]
        for row in set(self._bound_rows) - set(live):
            self._bitmask[row] = self._stop_row
        if self._batch_matcher is not None and len(live) > 1:
            matchers = [self.matchers[row] for row in live]
            self._batch_matcher.batch_fill_next_token_bitmask(matchers, self._bitmask, live)
        elif live:
            self.matchers[live[0]].fill_next_token_bitmask(self._bitmask, live[0])
        # 3. Mask the logits (batch, logits width) in place; columns past the grammar's vocab never win.
        width = min(scores.shape[-1], self.vocab_size)
        mask = self._bitmask.to(scores.device, non_blocking=True)
        self._xgr.apply_token_bitmask_inplace(scores, mask, vocab_size=width)
        if scores.shape[-1] > self.vocab_size:
            scores[self._bound_rows, self.vocab_size:] = float("-inf")
        return scores


def grammar_logits_processors(tokenizer: Any, task: Task | str, mode: str = "pointwise", batch_size: int = 1,
                              vocab_size: int | None = None, caps: SectionCaps | None = None,
                              stop_token_ids: Sequence[int] | None = None) -> list[LogitsProcessor]:
    """The logits processors that make `model.generate` write a parseable critique of `task` in `mode`.

    `tokenizer` is the critic's tokenizer or processor; `vocab_size` the model's logits width
    (`model.config.get_text_config().vocab_size`); `stop_token_ids` the generation config's end
    tokens (default: the tokenizer's eos). Pair it with `max_new_tokens=max_tokens_for(task, mode,
    caps)` so a critique never stops before the grammar's end.
    """
    return ebnf_logits_processors(tokenizer, critique_grammar(task, mode, caps), batch_size, vocab_size,
                                  stop_token_ids)


def ebnf_logits_processors(tokenizer: Any, ebnf: str, batch_size: int = 1, vocab_size: int | None = None,
                           stop_token_ids: Sequence[int] | None = None) -> list[LogitsProcessor]:
    """The same for any EBNF grammar, e.g. the one a request to rr_core.serve carried
    (`rr_core.grammar.grammar_from_request`); a grammar that does not compile raises InvalidRequest."""
    stops = list(stop_token_ids) if stop_token_ids is not None else None
    grammar = compile_ebnf(tokenizer, ebnf, vocab_size=vocab_size, stop_token_ids=stops)
    return [GrammarLogitsProcessor(grammar, batch_size, stop_token_ids=stops)]
