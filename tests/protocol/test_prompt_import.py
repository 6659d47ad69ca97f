"""Importing the checkpoints' own prompt from a file the user has, on synthetic sources the tests write.

The synthetic prompts follow the checkpoints' layout (every label exact) with wording invented here,
distinct from the shipped templates', so a test can tell the imported text from the shipped one.
"""

import json
import subprocess
import sys

import pytest
from PIL import Image

from rr_core.errors import TemplateError
from rr_core.prompt_import import import_prompts
from rr_core.prompts import active_template, build_pairwise, build_pointwise, describe_active_templates, main
from rr_core.rubric import Task, dimensions

REQUEST = "a teapot shaped like a snail"
LABELS = {(Task.T2I, "pointwise"): ["Generated Image"], (Task.EDIT, "pointwise"): ["Source Image", "Edited Image"],
          (Task.T2I, "pairwise"): ["Image A", "Image B"], (Task.EDIT, "pairwise"): ["Source Image", "Image A", "Image B"]}
COUNT = {1: "one image", 2: "two images", 3: "three images"}


def synthetic_system(task):
    return ("Synthetic judge text: you are an evaluator of " + ("edited" if task is Task.EDIT else "generated")
            + " pictures for this test, and you propose a better request afterwards.")


def synthetic_user(task, mode, request="{prompt}", marker="<image>", order=None):
    """A user prompt in the checkpoints' layout, with invented prose between the labels."""
    labels = LABELS[(task, mode)]
    dims = list(dimensions(task)) if order is None else order
    lines = [f"User Instruction: {request}", f"You are provided with {COUNT[len(labels)]}:"]
    lines += [f"{n}. {label} {marker}" for n, label in enumerate(labels, start=1)]
    lines += ["Synthetic line: please look and decide.", "", "Synthetic sentence about aspects.", "",
              "### Critical Aspects & Scoring Rubric"]
    for n, dim in enumerate(dims, start=1):
        lines.append(f"**{n}. {dim.heading}** (synthetic scope {n})")
        lines += [f"- **{level} ({dim.labels[level - 1]}):** synthetic level {level}." for level in (4, 3, 2, 1)]
        lines.append("")
    lines += ["### Scoring Methodology (CRITICAL)", "**Anchor:** pick a level.", "**Justify and Adjust:** refine it.",
              "  trailing spaces kept  ", "Output your evaluation in the following format:"]
    if mode == "pointwise":
        lines += ["# User Request Analysis", "[ synthetic ]"]
    lines.append("# Detailed Judgement")
    for n, dim in enumerate(dims, start=1):
        lines += [f"{n}. {dim.heading}:", "## Justification: [ synthetic ]"]
        lines += (["## Score: [ float score ]"] if mode == "pointwise"
                  else ["## Score A: [ float score ]", "## Score B: [ float score ]", "## Winner: [ synthetic ]"])
    lines.append("# Summary: [ synthetic ]")
    if mode == "pointwise":
        lines += ["", "# User Request Refinement:", "## Refinement Comments: [ synthetic ]",
                  "## Refined Request: [ synthetic ]"]
    return "\n".join(lines)


def readme(kinds=((Task.T2I, "pointwise"), (Task.EDIT, "pointwise")), **user_options):
    parts = ["# A synthetic model card", "", "Some prose.", ""]
    for task in {t for t, _ in kinds}:
        parts += [f"## {task.value} system prompt", "```text", synthetic_system(task), "```", ""]
    for task, mode in kinds:
        parts += [f"## {task.value} {mode} user prompt", "```", synthetic_user(task, mode, **user_options), "```", ""]
    parts += ["```python", "print('not a prompt')", "```"]
    return "\n".join(parts)


def img(colour):
    return Image.new("RGB", (32, 32), colour)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RR_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_readme_import_is_used_byte_for_byte_for_every_kind(tmp_path, data_dir):
    kinds = [(t, m) for t in Task for m in ("pointwise", "pairwise")]
    source = tmp_path / "README.md"
    source.write_text(readme(kinds), encoding="utf-8")
    assert main(["import", str(source)]) == 0
    assert sorted(p.name for p in (data_dir / "prompts").iterdir()) == sorted(
        f"{t.value}_{m}.yaml" for t, m in kinds)
    for task, mode in kinds:
        n = len(LABELS[(task, mode)])
        images = [img(c) for c in ("blue", "red", "green")[:n]]
        if mode == "pointwise":
            conv = build_pointwise(task, REQUEST, images[-1], images[0] if task is Task.EDIT else None)
        else:
            conv = (build_pairwise(task, REQUEST, images[1], images[2], images[0]) if task is Task.EDIT
                    else build_pairwise(task, REQUEST, images[0], images[1]))
        assert conv.system == synthetic_system(task)
        assert conv.user_text == synthetic_user(task, mode, request=REQUEST)
        assert conv.template_version.startswith(f"imported:{task.value}_{mode}@imported#")
        assert len(conv.images) == n


def test_jsonl_sft_records_import_and_reproduce_each_record(tmp_path, data_dir):
    records = []
    for request in ("a red kite over a beach", "a lamp made of glass", "a red kite over a beach"):
        records.append({"messages": [
            {"role": "system", "content": synthetic_system(Task.T2I)},
            {"role": "user", "content": synthetic_user(Task.T2I, "pointwise", request=request)},
            {"role": "assistant", "content": "# User Request Analysis\n..."}], "images": ["x.png"]})
    edit_user = synthetic_user(Task.EDIT, "pointwise", request="make it night", marker="")
    records.append({"system": synthetic_system(Task.EDIT), "conversations": [
        {"from": "human", "value": "<image><image>" + edit_user}, {"from": "gpt", "value": "..."}]})
    records.append({"messages": [{"role": "user", "content": "hello"}]})  # not a critique prompt: ignored
    source = tmp_path / "sft.jsonl"
    source.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    result = import_prompts(source)
    assert [(t.task, t.mode, count) for t, _, count, _ in result.saved] == [
        (Task.EDIT, "pointwise", 1), (Task.T2I, "pointwise", 3)]
    conv = build_pointwise(Task.T2I, "a lamp made of glass", img("red"))
    assert conv.user_text == records[1]["messages"][1]["content"]
    assert conv.system == records[1]["messages"][0]["content"]
    edit = build_pointwise(Task.EDIT, "make it night", img("red"), img("blue"))
    assert edit.user_text.startswith("User Instruction: make it night\nYou are provided with two images:\n"
                                     "1. Source Image <image>\n2. Edited Image <image>\n")
    rows = {(r["task"], r["mode"]): r for r in describe_active_templates()}
    assert rows[("t2i", "pointwise")]["origin"] == "imported"
    assert rows[("edit", "pointwise")]["template_version"] == edit.template_version
    assert rows[("t2i", "pairwise")]["origin"] == "shipped"


def test_imported_template_reaches_stored_critiques(tmp_path, data_dir):
    from tests.scripted import ScriptedCritic, critique_text

    from rr_core.critics.base import CritiqueRequest

    source = tmp_path / "README.md"
    source.write_text(readme(), encoding="utf-8")
    shipped = build_pointwise(Task.T2I, REQUEST, img("red")).template_version
    import_prompts(source)
    critic = ScriptedCritic(lambda c: critique_text("t2i", 3.0))
    critique = critic.critique(CritiqueRequest("t2i", REQUEST, img("red")))
    assert shipped.startswith("shipped:") and critique.template_version.startswith("imported:t2i_pointwise@")
    assert critique.template_version == active_template(Task.T2I).template_version
    assert "Synthetic line" in critic.seen[-1].user_text


@pytest.mark.parametrize("change,message", [
    (lambda t: t.replace("**2. Physical and Visual Quality**", "**2. Visual Quality**"), "Visual Quality"),
    (lambda t: t.replace("### Critical Aspects & Scoring Rubric", "### Rubric"), "rubric heading"),
    (lambda t: t.replace("- **3 (Minor flaws):**", "- **3 (Small flaws):**"), "level line"),
    (lambda t: t.replace("**Anchor:**", "Anchor:"), "methodology"),
    (lambda t: t.replace("3. Text Rendering:\n", "3. Text Quality:\n"), "output format names the dimensions"),
    (lambda t: t.replace("## Refined Request:", "## Better Request:"), "Refined Request"),
])
def test_prompts_that_do_not_match_the_rubric_are_refused(tmp_path, data_dir, change, message):
    source = tmp_path / "README.md"
    source.write_text(change(readme()), encoding="utf-8")
    with pytest.raises(TemplateError, match=message):
        import_prompts(source)
    assert not (data_dir / "prompts").exists() or not list((data_dir / "prompts").iterdir())


def test_dimensions_in_another_order_are_refused(tmp_path, data_dir):
    dims = dimensions(Task.T2I)
    source = tmp_path / "README.md"
    source.write_text(readme(kinds=[(Task.T2I, "pointwise")], order=[dims[1], dims[0], dims[2]]), encoding="utf-8")
    with pytest.raises(TemplateError, match=r"trained on \['Text Faithfulness', 'Physical and Visual Quality'"):
        import_prompts(source)


def test_a_refused_import_keeps_the_previous_templates(tmp_path, data_dir):
    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    good.write_text(readme(), encoding="utf-8")
    bad.write_text(readme().replace("**Justify and Adjust:**", "Adjust:"), encoding="utf-8")
    import_prompts(good)
    before = {p.name: p.read_bytes() for p in (data_dir / "prompts").iterdir()}
    with pytest.raises(TemplateError):
        import_prompts(bad)
    assert {p.name: p.read_bytes() for p in (data_dir / "prompts").iterdir()} == before


@pytest.mark.parametrize("text,message", [
    ("# Nothing here\n\n```\nprint(1)\n```\n", "no prompt in the checkpoints' layout"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', "no prompt in the checkpoints' layout"),
    ("{not json\n", "line 1: not JSON"),
])
def test_sources_without_a_prompt_get_a_specific_error(tmp_path, data_dir, text, message):
    source = tmp_path / ("sft.jsonl" if text.startswith("{") else "README.md")
    source.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match=message):
        import_prompts(source)


def test_user_prompt_without_its_system_prompt_is_refused(tmp_path, data_dir):
    source = tmp_path / "README.md"
    source.write_text("```\n" + synthetic_user(Task.T2I, "pointwise") + "\n```\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="no t2i system prompt"):
        import_prompts(source)


def test_a_hand_broken_imported_file_is_an_error_at_use(tmp_path, data_dir):
    source = tmp_path / "README.md"
    source.write_text(readme(), encoding="utf-8")
    import_prompts(source)
    path = data_dir / "prompts" / "t2i_pointwise.yaml"
    path.write_text(path.read_text().replace("**3. Text Rendering**", "**3. Lettering**"))
    with pytest.raises(TemplateError, match=str(path)):
        build_pointwise(Task.T2I, REQUEST, img("red"))


def test_command_line_import_with_data_dir(tmp_path):
    source = tmp_path / "README.md"
    source.write_text(readme(), encoding="utf-8")
    target = tmp_path / "elsewhere"
    done = subprocess.run([sys.executable, "-m", "rr_core.prompts", "import", str(source), "--data-dir", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "t2i pointwise: imported:t2i_pointwise@imported#" in done.stdout
    assert (target / "prompts" / "edit_pointwise.yaml").is_file()
    refused = subprocess.run([sys.executable, "-m", "rr_core.prompts", "import", str(tmp_path / "missing.md")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "import refused" in refused.stderr and "no such file" in refused.stderr
