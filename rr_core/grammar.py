"""The critique grammar: the layout of rr_core.critique_format as an EBNF that decoding must follow.

Constrained decoding (rr_core.critics.constrained for transformers, `vllm_extra_body` for a vLLM
server) makes every critique parse: the grammar fixes the headings, the dimension order, the score
syntax (1.0-4.0, N/A only where the rubric allows it), the pairwise winner words and the closing
refinement section, and leaves every word of the free-text fields and every score to the model.

The grammar is not written by hand. The renderers of rr_core.critique_format are called with a
placeholder in every slot, and the text between placeholders becomes the grammar's literals, so a
dimension added to rr_core.rubric or a heading changed in critique_format changes the grammar too.

Free text is one line of at most `SectionCaps` characters, without '#', line breaks or control
characters, so the model cannot write a heading of its own and every critique ends within a known
number of tokens (`max_tokens_for`). The analysis is the one free line that starts a line, so it
carries three more rules that keep the parser from reading it as a heading (see `_analysis_rules`).
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from rr_core import critique_format as fmt
from rr_core.errors import InvalidRequest
from rr_core.rubric import Task, dimensions

logger = logging.getLogger(__name__)

MODES = ("pointwise", "pairwise")

# Characters no free-text field may hold: line breaks and other control characters (a line break
# would let the model start a section of its own), '#', the heading mark, and the UTF-16 surrogates
# (xgrammar matches bytes: without them excluded, byte tokens one by one may spell a surrogate's
# three bytes, which are not UTF-8 and decode to U+FFFD).
_NEVER = r"\0-\x1f\x7f-\x9f#\u2028\u2029\ud800-\udfff"
# The analysis also holds no ':' (every field line the parser reads is "Name:"), no '*' or '_' (the
# parser deletes "**" and "__" before reading, which could join two words into a heading).
_NEVER_IN_ANALYSIS = _NEVER + r":*_"
# White space (str.isspace) outside _NEVER: no free text starts with it.
_SPACE = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
# The parser deletes "**" and "__" and strips quotes around the refined request, and a critique
# without a refined request is not ok: it may not start with these, so it keeps its first character.
_NOT_FIRST_IN_REFINED = r'*_"\u201c\u201d'
# Characters the parser skips before a heading (`_PREFIX` in rr_core.parser): not a first character.
_NOT_FIRST_IN_ANALYSIS = _SPACE + r">\-"
# The analysis ends with one of these, so no line of it equals a heading (headings end in a letter).
ANALYSIS_END = ".!?)\"'’”。！？"
# Characters other than the ASCII upper/lower pair that Python's re.IGNORECASE matches to a letter;
# tests/grammar checks this table against every code point.
CASE_FOLDS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}

_SLOT = re.compile("\ue000([a-z_]+)(?::(\\d+))?\ue001")


@dataclass(frozen=True)
class SectionCaps:
    """The most characters the model may write in each free-text field (one line each).

    The defaults keep the longest critique of any task and mode under about 1000 characters, so it
    fits in 1024 tokens even for text that costs one token per character (a random model's output).
    Real checkpoints write longer justifications: give them larger caps (see the module docs of
    rr_core.critics.constrained for the trade-off) and `max_tokens_for` the same caps.

    None leaves a field unbounded: the grammar then compiles in a fraction of a second for any
    vocabulary (each bounded position costs xgrammar one token-mask pass over the vocabulary at
    compile time: about 30 ms at Qwen's 151k tokens on one CPU core), but only max_new_tokens ends a
    runaway field, and `max_tokens_for` has no bound to give.

    analysis: the "User Request Analysis" line (at least 32; a line that does not start like the
        refinement heading gets 22 fewer: see `_analysis_rules`).
    justification: each dimension's justification (pointwise and pairwise).
    summary: the summary line.
    comments: the refinement comments (pointwise only).
    refined: the refined request (pointwise only).
    """

    analysis: int | None = 96
    justification: int | None = 64
    summary: int | None = 64
    comments: int | None = 64
    refined: int | None = 120

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"SectionCaps.{field.name} must be a positive integer or None, "
                                 f"got {value!r}")
        if self.analysis is not None and self.analysis < len(fmt.REFINEMENT) + 9:
            raise ValueError(f"SectionCaps.analysis must be at least {len(fmt.REFINEMENT) + 9} (the analysis "
                             f"may use {len(fmt.REFINEMENT)} of them on its first word), got {self.analysis}")


def _slot(name: str, index: int | None = None) -> str:
    return f"\ue000{name}" + (f":{index}" if index is not None else "") + "\ue001"


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected 'pointwise' or 'pairwise'")
    return mode


def _skeleton(task: Task, mode: str) -> str:
    """The critique layout with a placeholder in every slot, rendered by critique_format itself."""
    count = len(dimensions(task))
    if mode == "pointwise":
        entries = [(_slot("justification", i), _slot("score", i)) for i in range(count)]
        return fmt.render_pointwise(task, _slot("analysis"), entries, _slot("summary"), _slot("comments"),
                                    _slot("refined"))
    entries = [(_slot("justification", i), _slot("score", i), _slot("score", i), _slot("winner", i))
               for i in range(count)]
    return fmt.render_pairwise(task, _slot("analysis"), entries, _slot("summary"))


def _pieces(task: Task, mode: str) -> list[tuple[str, str]]:
    """The skeleton as ("literal", text) and ("rule", rule name) pieces, in order."""
    dims = dimensions(task)
    skeleton = _skeleton(task, mode)
    pieces: list[tuple[str, str]] = []
    position = 0
    for match in _SLOT.finditer(skeleton):
        if match.start() > position:
            pieces.append(("literal", skeleton[position:match.start()]))
        name, index = match.group(1), match.group(2)
        if name == "score":
            name = "score_or_na" if dims[int(index)].na_allowed else "score"
        pieces.append(("rule", name))
        position = match.end()
    if position < len(skeleton):
        pieces.append(("literal", skeleton[position:]))
    return pieces


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _class_chars(chars: Iterable[str]) -> str:
    """Characters for inside an EBNF character class, with the class metacharacters escaped."""
    out = []
    for char in chars:
        if char in "\\]^-[":
            out.append("\\" + char)
        elif ord(char) > 0x7e:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def _repeat(cap: int | None) -> str:
    """EBNF for "0 to cap times" (any number of times when cap is None)."""
    return "*" if cap is None else f"{{0,{cap}}}"


def _text_rule(name: str, cap: int | None, not_first: str = "") -> str:
    """One line of 1..cap characters that starts with a visible character."""
    rest = f" [^{_NEVER}]{_repeat(None if cap is None else cap - 1)}" if cap != 1 else ""
    return f"{name} ::= [^{_NEVER}{_SPACE}{not_first}]{rest}"


def _case_variants(char: str) -> str:
    """The characters re.IGNORECASE matches to `char`."""
    if not char.isalpha():
        return char
    return char.lower() + char.upper() + CASE_FOLDS.get(char.lower(), "")


def _analysis_rules(cap: int | None) -> list[str]:
    """The analysis line: free text that the parser can never read as a heading.

    The parser looks for headings at the start of lines and the analysis is the only free text that
    starts one, so it must not (1) hold ':' (every "Name: value" field), (2) end in a letter, space
    or colon (every bare heading line such as "Text Rendering" or "Detailed Judgement"; it ends in
    ANALYSIS_END instead), or (3) start with the refinement heading's words, which the parser takes
    as the refinement section whatever follows them. For (3) rule `analysis_i` is the line after
    its first i characters matched the heading's first i letters (case-insensitively, as the
    parser reads): the next character either differs from the heading's (the rest is free, in the
    one shared rule `analysis_rest`) or continues it, and the heading's last character never comes.
    The line is at most `cap` characters long, and may use all of them when it starts like the
    heading; the rest is sized for that case so that there is one bounded repetition, not one per
    depth (each repeated position costs xgrammar a token-mask pass over the whole vocabulary).
    """
    forbidden = fmt.REFINEMENT.lower()
    end = f"[{_class_chars(ANALYSIS_END)}]"
    rules = []
    for i, char in enumerate(forbidden):
        not_here = _NEVER_IN_ANALYSIS + (_NOT_FIRST_IN_ANALYSIS if i == 0 else "")
        same = _case_variants(char)
        alternatives = [f"[^{not_here}{_class_chars(same)}] analysis_rest", end]
        if i + 1 < len(forbidden):
            alternatives.append(f"[{_class_chars(same)}] analysis_{i + 1}")
        rules.append(f"analysis_{i} ::= " + " | ".join(alternatives))
    rules[0] = rules[0].replace("analysis_0 ::=", "analysis ::=", 1)
    rest = None if cap is None else cap - len(forbidden) - 1
    rules.append(f"analysis_rest ::= [^{_NEVER_IN_ANALYSIS}]{_repeat(rest)} {end}")
    return rules


def _rules(caps: SectionCaps) -> dict[str, list[str]]:
    """Every slot rule by name; the skeleton's pieces pick the ones a grammar needs."""
    winners = " | ".join(_literal(fmt.WINNER_WORDS[p]) for p in fmt.WINNER_WORDS)
    return {
        "analysis": _analysis_rules(caps.analysis),
        "justification": [_text_rule("justification", caps.justification)],
        "summary": [_text_rule("summary", caps.summary)],
        "comments": [_text_rule("comments", caps.comments)],
        "refined": [_text_rule("refined", caps.refined, _NOT_FIRST_IN_REFINED)],
        # 1, 2.5, 3.25 ... 4.0; nothing above 4 or below 1: only values the parser reads as valid
        # scores (tests/grammar checks the rule's whole language against rr_core.parser.read_score).
        "score": ['score ::= [1-3] ("." [0-9] [0-9]?)? | "4" (".0" "0"?)?'],
        "score_or_na": [f"score_or_na ::= score | {_literal(fmt.NA)}"],
        "winner": [f"winner ::= {winners}"],
    }


@lru_cache(maxsize=64)
def _grammar(task: Task, mode: str, caps: SectionCaps) -> str:
    pieces = _pieces(task, mode)
    body = " ".join(_literal(text) if kind == "literal" else text for kind, text in pieces)
    needed = list(dict.fromkeys(name for kind, name in pieces if kind == "rule"))
    if "score_or_na" in needed and "score" not in needed:
        needed.append("score")
    rules = _rules(caps)
    lines = [f'root ::= {body} "\\n"?'] + [line for name in needed for line in rules[name]]
    return "\n".join(lines) + "\n"


def critique_grammar(task: Task | str, mode: str = "pointwise", caps: SectionCaps | None = None) -> str:
    """The EBNF (GBNF dialect, as xgrammar and vLLM read it) of a critique of `task` in `mode`."""
    return _grammar(Task.parse(task), _check_mode(mode), caps or SectionCaps())


_SLOT_CHARS = {"score": 4, "score_or_na": max(4, len(fmt.NA)),
               "winner": max(len(word) for word in fmt.WINNER_WORDS.values())}


def _slot_chars(name: str, caps: SectionCaps) -> int:
    if name in _SLOT_CHARS:
        return _SLOT_CHARS[name]
    if getattr(caps, name) is None:
        raise ValueError(f"SectionCaps.{name} is unbounded: a critique under these caps has no length bound")
    return getattr(caps, name)


def max_critique_chars(task: Task | str, mode: str = "pointwise", caps: SectionCaps | None = None) -> int:
    """The length in characters of the longest critique the grammar allows (with its final newline)."""
    caps = caps or SectionCaps()
    pieces = _pieces(Task.parse(task), _check_mode(mode))
    return 1 + sum(len(text) if kind == "literal" else _slot_chars(text, caps) for kind, text in pieces)


def max_tokens_for(task: Task | str, mode: str = "pointwise", caps: SectionCaps | None = None) -> int:
    """A `max_new_tokens` that no constrained critique can reach before its end token.

    Every token a byte-level tokenizer can emit under the grammar carries at least one byte, so the
    bound is the longest critique in UTF-8 bytes (free text counted at 4 bytes a character) plus
    the end token. Decoding stops at the grammar's end long before this for ordinary text; the
    bound only matters for a model that writes nothing but 4-byte characters.
    """
    caps = caps or SectionCaps()
    pieces = _pieces(Task.parse(task), _check_mode(mode))
    total = 1 + sum(len(text.encode("utf-8")) if kind == "literal" else _slot_chars(text, caps) * 4
                    for kind, text in pieces)
    return total + 1


# --- compiled grammars, per tokenizer ---------------------------------------------------------

_COMPILERS: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
_COMPILED_PER_TOKENIZER = 64  # request grammars can be anything: keep the most recent few


def _plain_tokenizer(tokenizer: Any) -> Any:
    """A processor's tokenizer, or the tokenizer itself."""
    from transformers import ProcessorMixin

    return tokenizer.tokenizer if isinstance(tokenizer, ProcessorMixin) else tokenizer


def _compiler(tokenizer: Any, vocab_size: int | None, stop_token_ids: tuple[int, ...] | None):
    import xgrammar as xgr

    tokenizer = _plain_tokenizer(tokenizer)
    per_tokenizer = _COMPILERS.setdefault(tokenizer, {})
    key = (vocab_size, stop_token_ids)
    if key not in per_tokenizer:
        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids) if stop_token_ids else None)
        per_tokenizer[key] = (xgr.GrammarCompiler(info), {})
    return per_tokenizer[key]


def compiled_grammar(tokenizer: Any, task: Task | str, mode: str = "pointwise",
                     caps: SectionCaps | None = None,
                     *, vocab_size: int | None = None, stop_token_ids: Iterable[int] | None = None):
    """The critique grammar compiled for `tokenizer` (an HF tokenizer or processor), cached per tokenizer.

    `vocab_size` is the width of the model's logits (config.vocab_size, often padded beyond the
    tokenizer; ids past the tokenizer are never allowed); `stop_token_ids` are the ids that end a
    critique (default: the tokenizer's eos token).
    """
    grammar = critique_grammar(task, mode, caps)
    return compile_ebnf(tokenizer, grammar, vocab_size=vocab_size, stop_token_ids=stop_token_ids)


def compile_ebnf(tokenizer: Any, ebnf: str, *, vocab_size: int | None = None,
                 stop_token_ids: Iterable[int] | None = None):
    """Any EBNF grammar (e.g. a request's, see `grammar_from_request`) compiled for `tokenizer`, cached.

    A grammar xgrammar cannot read raises InvalidRequest with xgrammar's message.
    """
    stops = tuple(int(t) for t in stop_token_ids) if stop_token_ids is not None else None
    compiler, compiled = _compiler(tokenizer, vocab_size, stops)
    if ebnf not in compiled:
        if len(compiled) >= _COMPILED_PER_TOKENIZER:
            compiled.pop(next(iter(compiled)))
        started = time.perf_counter()
        try:
            compiled[ebnf] = compiler.compile_grammar(ebnf)
        except (RuntimeError, ValueError) as exc:
            raise InvalidRequest(f"The grammar does not compile: {exc}") from exc
        logger.info("compiled a %d-character grammar in %.1f s", len(ebnf), time.perf_counter() - started)
    return compiled[ebnf]


def compile_for_tokenizer_info(tokenizer_info: Any, task: Task | str, mode: str = "pointwise",
                               caps: SectionCaps | None = None):
    """The critique grammar compiled for an xgrammar TokenizerInfo (no caching; tests and benchmarks)."""
    import xgrammar as xgr

    return xgr.GrammarCompiler(tokenizer_info, cache_enabled=False).compile_grammar(
        critique_grammar(task, mode, caps))


# --- the same grammar over HTTP ----------------------------------------------------------------

def vllm_extra_body(task: Task | str, mode: str = "pointwise", caps: SectionCaps | None = None,
                    *, legacy: bool = False) -> dict:
    """The `extra_body` of an OpenAI-compatible request that makes a vLLM server follow the grammar.

    Current vLLM (0.12 and later) reads `structured_outputs.grammar`; `legacy=True` sends
    `guided_grammar`, the field older servers read (removed in vLLM 0.12).
    """
    grammar = critique_grammar(task, mode, caps)
    if legacy:
        return {"guided_grammar": grammar}
    return {"structured_outputs": {"grammar": grammar}}


def grammar_from_request(body: dict) -> str | None:
    """The grammar a request body asks for, in either of the fields `vllm_extra_body` writes; None if neither.

    A request may name the grammar in only one place; anything but a non-empty string is refused.
    """
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, got {type(body).__name__}.")
    found = []
    structured = body.get("structured_outputs")
    if structured is not None:
        if not isinstance(structured, dict):
            raise InvalidRequest("'structured_outputs' must be a JSON object.")
        unsupported = sorted(set(structured) - {"grammar"})
        if unsupported:
            raise InvalidRequest(f"'structured_outputs' supports only 'grammar' here, got {unsupported}.")
        if "grammar" in structured:
            found.append(("structured_outputs.grammar", structured["grammar"]))
    if body.get("guided_grammar") is not None:
        found.append(("guided_grammar", body["guided_grammar"]))
    if not found:
        return None
    if len(found) > 1:
        raise InvalidRequest("Give the grammar once: either 'structured_outputs.grammar' "
                             "or 'guided_grammar'.")
    field, grammar = found[0]
    if not isinstance(grammar, str) or not grammar.strip():
        raise InvalidRequest(f"'{field}' must be a non-empty grammar string.")
    return grammar
