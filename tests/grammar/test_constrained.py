"""The grammar logits processor: token-level matching, batching, padded vocab, the tiny critic's output."""

import re
import threading

import pytest
import torch
from PIL import Image

from rr_core import critique_format as fmt
from rr_core.critics.constrained import GrammarLogitsProcessor, grammar_logits_processors
from rr_core.critique import ParseStatus
from rr_core.grammar import MODES, SectionCaps, compiled_grammar, critique_grammar, max_tokens_for
from rr_core.parser import parse_critique, parse_pairwise
from rr_core.prompts import build_pairwise, build_pointwise
from rr_core.rubric import SCORE_MAX, SCORE_MIN, Task, dimensions
from tests import critique_texts as texts
from tests.grammar.matching import accepts

SMALL = SectionCaps(analysis=32, justification=16, summary=16, comments=16, refined=24)
SCORE_TEXT = re.compile(r"^(?:[1-3](?:\.\d\d?)?|4(?:\.00?)?|N/A)$")
REQUESTS = ["a red fox in the snow", "a poster that says OPEN above a shop door", "two cats on a sofa"]
COLOURS = [(200, 40, 40), (30, 160, 60), (40, 60, 200), (220, 200, 30)]


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from rr_core.critics.tiny import ensure_tiny_critic

    path = ensure_tiny_critic()
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    return model, processor


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return tiny[1].tokenizer


def vocab_size(model):
    return model.config.get_text_config().vocab_size


# --- token level ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,task,mode", [("T2I_OK", Task.T2I, "pointwise"),
                                            ("EDIT_OK", Task.EDIT, "pointwise"),
                                            ("PAIRWISE_EDIT", Task.EDIT, "pairwise")])
def test_tokenized_canonical_text_is_accepted_token_by_token(tokenizer, name, task, mode):
    import xgrammar as xgr

    caps = SectionCaps(analysis=400, justification=400, summary=400, comments=400, refined=400)
    matcher = xgr.GrammarMatcher(compiled_grammar(tokenizer, task, mode, caps))
    for token in tokenizer.encode(getattr(texts, name), add_special_tokens=False):
        assert matcher.accept_token(token)
    assert matcher.accept_token(tokenizer.eos_token_id)
    assert matcher.is_terminated()


def test_tokenized_bold_text_is_refused(tokenizer):
    import xgrammar as xgr

    matcher = xgr.GrammarMatcher(compiled_grammar(tokenizer, Task.T2I, "pointwise"))
    results = [matcher.accept_token(t) for t in tokenizer.encode(texts.BOLD, add_special_tokens=False)]
    assert not all(results)


def _byte_symbol_str(byte: int) -> str:
    """The byte-level BPE's symbol for one byte (GPT-2's byte-to-unicode map, as the tokenizer uses)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return bytes_to_unicode()[byte]


@pytest.mark.parametrize("data", [b"\xed\xa8\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xf4\x90\x80\x80"])
def test_free_text_refuses_bytes_that_are_not_utf8(tokenizer, data):
    """Byte tokens one by one may not spell a surrogate, an overlong form or a code point past U+10FFFF:
    Python decodes those to U+FFFD, so the critique would hold text the grammar itself refuses."""
    import xgrammar as xgr

    def in_analysis(data: bytes) -> bool:
        matcher = xgr.GrammarMatcher(compiled_grammar(tokenizer, Task.T2I, "pointwise"))
        for token in tokenizer.encode(f"# {fmt.ANALYSIS}\nA", add_special_tokens=False):
            assert matcher.accept_token(token)
        tokens = [tokenizer.convert_tokens_to_ids(_byte_symbol_str(b)) for b in data]
        assert all(isinstance(t, int) and t >= 0 for t in tokens)
        return all(matcher.accept_token(t) for t in tokens)

    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert not in_analysis(data)
    assert in_analysis("é€😀\U0010fffd".encode())  # real two-, three- and four-byte characters go through


def test_compiled_grammar_is_cached_per_tokenizer(tiny):
    model, processor = tiny
    first = compiled_grammar(processor, Task.T2I, "pointwise", vocab_size=vocab_size(model))
    assert compiled_grammar(processor.tokenizer, "t2i", "pointwise", vocab_size=vocab_size(model)) is first
    assert compiled_grammar(processor, Task.T2I, "pairwise", vocab_size=vocab_size(model)) is not first


# --- the processor on hand-made logits -----------------------------------------------------------

def feed(processor, prompt, tokens):
    """Run the processor over a prompt then `tokens` (batch, steps), returning each step's masked scores."""
    width = processor.vocab_size
    ids = prompt
    steps = [processor(ids, torch.zeros(ids.shape[0], width))]
    for column in tokens.T:
        ids = torch.cat([ids, column[:, None]], dim=1)
        steps.append(processor(ids, torch.zeros(ids.shape[0], width)))
    return steps


def test_finished_rows_keep_only_stop_tokens_and_pad_rows_are_ignored(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.pad_token_id
    critique = tok.encode(texts.PAIRWISE_T2I, add_special_tokens=False)
    [proc] = grammar_logits_processors(processor, Task.T2I, "pairwise", 2, vocab_size(model),
                                       caps=SectionCaps(analysis=400, justification=400, summary=400))
    # Row 0 writes the whole critique, ends, then gets padding; row 1 is left-padded and still going.
    row0 = critique + [eos] + [pad] * 3
    longer = tok.encode(texts.PAIRWISE_T2I.rstrip("\n") + " Image B misses one circle entirely.",
                        add_special_tokens=False)
    row1 = longer[: len(row0)]
    assert len(row1) == len(row0)
    prompt = torch.tensor([[pad, 5, 6], [pad, pad, 7]])
    steps = feed(proc, prompt, torch.tensor([row0, row1]))
    allowed_after_end = torch.isfinite(steps[len(critique) + 1][0]).nonzero().flatten().tolist()
    assert allowed_after_end == sorted(proc.stop_token_ids)
    assert torch.isfinite(steps[-1][0]).nonzero().flatten().tolist() == sorted(proc.stop_token_ids)
    assert torch.isfinite(steps[-1][1]).sum() > 1


def test_logits_wider_than_the_tokenizer_are_masked(tiny):
    model, processor = tiny
    tok = processor.tokenizer
    assert vocab_size(model) > len(tok)  # the tiny critic pads its vocabulary, as Qwen's checkpoints do
    [proc] = grammar_logits_processors(processor, Task.T2I, "pointwise", 1, vocab_size(model))
    scores = proc(torch.tensor([[1, 2, 3]]), torch.zeros(1, vocab_size(model) + 64))
    allowed = torch.isfinite(scores[0]).nonzero().flatten()
    assert allowed.numel() > 0 and int(allowed.max()) < len(tok)
    assert all(tok.decode([t]).startswith("#") for t in allowed.tolist())


def test_processor_input_checks(tiny):
    model, processor = tiny
    [proc] = grammar_logits_processors(processor, Task.T2I, "pointwise", 2, vocab_size(model))
    with pytest.raises(ValueError, match="batch size 2"):
        proc(torch.tensor([[1, 2]]), torch.zeros(1, vocab_size(model)))
    [proc] = grammar_logits_processors(processor, Task.T2I, "pointwise", 1, vocab_size(model))
    proc(torch.tensor([[1, 2]]), torch.zeros(1, vocab_size(model)))
    with pytest.raises(RuntimeError, match="one generate call"):
        proc(torch.tensor([[1, 2]]), torch.zeros(1, vocab_size(model)))
    with pytest.raises(RuntimeError, match="not allowed"):
        proc(torch.tensor([[1, 2, processor.tokenizer.encode("x")[0]]]), torch.zeros(1, vocab_size(model)))
    with pytest.raises(ValueError, match="batch_size"):
        GrammarLogitsProcessor(compiled_grammar(processor, Task.T2I), 0)


# --- the tiny critic ------------------------------------------------------------------------------

def conversations(task, mode, batch):
    images = [Image.new("RGB", (64, 64), colour) for colour in COLOURS]
    convs = []
    for row in range(batch):
        request = REQUESTS[row % len(REQUESTS)]
        source = images[3] if task == Task.EDIT else None
        if mode == "pointwise":
            convs.append(build_pointwise(task, request, images[row % 3], source_image=source))
        else:
            convs.append(build_pairwise(task, request, images[row % 3], images[(row + 1) % 3],
                                        source_image=source))
    return [c.to_transformers() for c in convs]


def generate(tiny, task, mode, batch, seed, constrained, max_new_tokens, do_sample=True, streamer=None):
    """Decoded completions (cut at the first end token) and whether each row ended before the limit."""
    model, processor = tiny
    inputs = processor.apply_chat_template(conversations(task, mode, batch), add_generation_prompt=True,
                                           tokenize=True, return_dict=True, return_tensors="pt",
                                           processor_kwargs={"padding": True})
    eos = model.generation_config.eos_token_id
    processors = (grammar_logits_processors(processor, task, mode, batch, vocab_size(model), SMALL,
                                            stop_token_ids=eos) if constrained else [])
    torch.manual_seed(seed)
    kwargs = {"do_sample": True, "temperature": 1.0} if do_sample else {"do_sample": False}
    out = model.generate(**inputs, logits_processor=processors, max_new_tokens=max_new_tokens,
                         streamer=streamer, **kwargs)
    texts_out, ended = [], []
    for row in out[:, inputs["input_ids"].shape[1]:].tolist():
        end = next((i for i, token in enumerate(row) if token in eos), None)
        ended.append(end is not None)
        texts_out.append(processor.tokenizer.decode(row[:end], skip_special_tokens=True))
    return texts_out, ended


def check_parses(text, task, mode):
    assert accepts(critique_grammar(task, mode, SMALL), text), text
    if mode == "pointwise":
        critique = parse_critique(text, task)
        assert critique.status is ParseStatus.OK, (critique.problems, text)
        for dim in dimensions(task):
            entry = critique.scores[dim.key]
            assert SCORE_TEXT.match(entry.raw_score), entry.raw_score
            assert entry.not_applicable <= dim.na_allowed
            assert entry.not_applicable or SCORE_MIN <= entry.score <= SCORE_MAX
        assert critique.refined_request
    else:
        pair = parse_pairwise(text, task)
        assert pair.status is ParseStatus.OK, (pair.problems, text)
        for dim in dimensions(task):
            entry = pair.dims[dim.key]
            assert entry.winner is not None
            sides = ((entry.score_a, entry.a_not_applicable), (entry.score_b, entry.b_not_applicable))
            for score, na in sides:
                assert na <= dim.na_allowed
                assert na or SCORE_MIN <= score <= SCORE_MAX


CASES = [(task, mode) for task in Task for mode in MODES]


@pytest.mark.slow
@pytest.mark.parametrize("task,mode", CASES)
@pytest.mark.parametrize("batch", [1, 3])
def test_constrained_tiny_critic_always_parses(tiny, task, mode, batch):
    """Sampling at temperature 1 from random weights, several seeds: every row ends and parses ok."""
    seed = 10 * batch + CASES.index((task, mode))  # a different seed for every run
    texts_out, ended = generate(tiny, task, mode, batch, seed, True, max_tokens_for(task, mode, SMALL))
    assert all(ended)
    for text in texts_out:
        check_parses(text, task, mode)
    assert len(set(texts_out)) == len(texts_out)  # the rows really differ


@pytest.mark.slow
@pytest.mark.parametrize("task,mode", CASES)
def test_unconstrained_tiny_critic_does_not_parse(tiny, task, mode):
    """The same model and prompts without the grammar: nothing parses (so the test above can fail)."""
    texts_out, _ = generate(tiny, task, mode, 3, 13, False, 160)
    for text in texts_out:
        status = (parse_critique(text, task) if mode == "pointwise" else parse_pairwise(text, task)).status
        assert status is not ParseStatus.OK
        assert not accepts(critique_grammar(task, mode, SMALL), text)


@pytest.mark.slow
def test_streamed_greedy_critique_parses(tiny):
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tiny[1].tokenizer, skip_prompt=True, skip_special_tokens=True)
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=generate(
        tiny, Task.EDIT, "pointwise", 1, 0, True, max_tokens_for(Task.EDIT, "pointwise", SMALL),
        do_sample=False, streamer=streamer)))
    worker.start()
    chunks = list(streamer)
    worker.join()
    [text], [ended] = result["out"]
    assert ended and len(chunks) > 1
    assert "".join(chunks).strip() == text.strip()
    check_parses(text, Task.EDIT, "pointwise")
    assert text.startswith(f"# {fmt.ANALYSIS}\n")


def test_request_grammar_compiles_or_says_why(tiny):
    from rr_core.critics.constrained import ebnf_logits_processors
    from rr_core.errors import InvalidRequest
    from rr_core.grammar import grammar_from_request, vllm_extra_body

    model, processor = tiny
    ebnf = grammar_from_request(vllm_extra_body(Task.T2I, "pairwise"))
    [proc] = ebnf_logits_processors(processor, ebnf, 1, vocab_size(model))
    expected = compiled_grammar(processor, Task.T2I, "pairwise", vocab_size=vocab_size(model))
    assert proc.compiled_grammar is expected
    with pytest.raises(InvalidRequest, match="does not compile"):
        ebnf_logits_processors(processor, "root ::= undefined_rule", 1, vocab_size(model))


@pytest.mark.slow
def test_one_grammar_per_row_for_a_mixed_batch(tiny):
    """Rows of one batch may follow different grammars (here: t2i and edit pointwise prompts together)."""
    model, processor = tiny
    chats = conversations(Task.T2I, "pointwise", 1) + conversations(Task.EDIT, "pointwise", 1)
    inputs = processor.apply_chat_template(chats, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", processor_kwargs={"padding": True})
    eos = model.generation_config.eos_token_id
    grammars = [compiled_grammar(processor, task, "pointwise", SMALL, vocab_size=vocab_size(model),
                                 stop_token_ids=eos) for task in (Task.T2I, Task.EDIT)]
    torch.manual_seed(5)
    out = model.generate(**inputs, logits_processor=[GrammarLogitsProcessor(grammars, stop_token_ids=eos)],
                         max_new_tokens=max_tokens_for(Task.EDIT, "pointwise", SMALL), do_sample=True)
    for row, task in zip(out[:, inputs["input_ids"].shape[1]:].tolist(), (Task.T2I, Task.EDIT)):
        end = next(i for i, token in enumerate(row) if token in eos)
        check_parses(processor.tokenizer.decode(row[:end], skip_special_tokens=True), task, "pointwise")
    with pytest.raises(ValueError, match="2 grammars for batch size 3"):
        GrammarLogitsProcessor(grammars, 3)
