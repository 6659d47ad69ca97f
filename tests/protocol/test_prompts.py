import base64
import io

import pytest
from PIL import Image

from rr_core.errors import InvalidRequest, TemplateError
from rr_core.prompts import PROMPTS_DIR, build_pairwise, build_pointwise, load_template_file
from rr_core.rubric import Task, dimensions


def img(color, size=(64, 48)):
    return Image.new("RGB", size, color)


# The checkpoints' prompt layout, label by label (protocol notes, "Prompt layout"): written out here
# from the protocol, not from the project's rubric, so a label drifting in rr_core breaks these tests.
LEVEL_LABELS = {
    "Text Faithfulness": ("Full match", "Minor mismatch", "Some mismatch", "Major deviations"),
    "Image Faithfulness": ("Uses input fully", "Minor mismatch", "Partial mismatch", "Fails to use input"),
    "Physical and Visual Quality": ("No noticeable flaws", "Minor flaws", "Some flaws", "Severe flaws"),
    "Text Rendering": ("Full match", "Mostly match", "Partial match", "Major deviations"),
}
PROTOCOL_DIMENSIONS = {
    Task.T2I: ("Text Faithfulness", "Physical and Visual Quality", "Text Rendering"),
    Task.EDIT: ("Text Faithfulness", "Image Faithfulness", "Physical and Visual Quality", "Text Rendering"),
}
IMAGE_LABELS = {
    (Task.T2I, "pointwise"): ("You are provided with one image:", ["1. Generated Image "]),
    (Task.EDIT, "pointwise"): ("You are provided with two images:", ["1. Source Image ", "2. Edited Image "]),
    (Task.T2I, "pairwise"): ("You are provided with two images:", ["1. Image A ", "2. Image B "]),
    (Task.EDIT, "pairwise"): ("You are provided with three images:",
                              ["1. Source Image ", "2. Image A ", "3. Image B "]),
}
REQUEST = "a red fox in the snow"


def conversation(task, mode):
    if mode == "pointwise":
        return build_pointwise(task, REQUEST, img("red"), img("blue") if task is Task.EDIT else None)
    if task is Task.EDIT:
        return build_pairwise(task, REQUEST, img("red"), img("green"), img("blue"))
    return build_pairwise(task, REQUEST, img("red"), img("green"))


def expected_labels(task, mode):
    """Every exact label of the layout, in the order the prompt must carry them."""
    heading, image_labels = IMAGE_LABELS[(task, mode)]
    labels = [f"User Instruction: {REQUEST}\n", heading + "\n", *image_labels,
              "### Critical Aspects & Scoring Rubric\n"]
    for number, name in enumerate(PROTOCOL_DIMENSIONS[task], start=1):
        labels.append(f"**{number}. {name}** (")
        labels += [f"- **{level} ({label}):** " for level, label in zip((4, 3, 2, 1), LEVEL_LABELS[name])]
    labels += ["### Scoring Methodology (CRITICAL)\n", "**Anchor:**", "**Justify and Adjust:**",
               "Output your evaluation in the following format:\n"]
    labels += ["# User Request Analysis\n[ ", "# Detailed Judgement\n"]
    for number, name in enumerate(PROTOCOL_DIMENSIONS[task], start=1):
        score = "[ float score or N/A ]" if name == "Text Rendering" else "[ float score ]"
        labels += [f"{number}. {name}:\n", "## Justification: [ "]
        if mode == "pointwise":
            labels.append(f"## Score: {score}\n")
        else:
            labels += [f"## Score A: {score}\n", f"## Score B: {score}\n", "## Winner: [ "]
    labels.append("# Summary: [ ")
    if mode == "pointwise":
        labels += ["# User Request Refinement:\n", "## Refinement Comments: [ ", "## Refined Request: [ "]
    return labels


def assert_in_order(text, labels):
    position = 0
    for label in labels:
        found = text.find(label, position)
        assert found >= 0, f"label {label!r} missing after character {position}: {text[position:position + 120]!r}"
        position = found + len(label)


@pytest.mark.parametrize("mode", ["pointwise", "pairwise"])
@pytest.mark.parametrize("task", list(Task))
def test_prompt_carries_every_label_of_the_checkpoints_layout_in_order(task, mode):
    conv = conversation(task, mode)
    assert_in_order(conv.user_text, expected_labels(task, mode))
    assert conv.user_text.startswith(f"User Instruction: {REQUEST}\n")


@pytest.mark.parametrize("mode", ["pointwise", "pairwise"])
@pytest.mark.parametrize("task", list(Task))
def test_each_image_follows_its_label_on_its_own_line(task, mode):
    conv = conversation(task, mode)
    _, image_labels = IMAGE_LABELS[(task, mode)]
    image_positions = [i for i, part in enumerate(conv.parts) if not isinstance(part, str)]
    assert len(image_positions) == len(image_labels)
    for label, index in zip(image_labels, image_positions):
        before, after = conv.parts[index - 1], conv.parts[index + 1]
        assert before.split("\n")[-1] == label, (label, before[-60:])
        assert after.startswith("\n")
    if task is Task.EDIT:  # the source image comes first
        assert conv.images[0].getpixel((0, 0)) == (0, 0, 255)


@pytest.mark.parametrize("mode", ["pointwise", "pairwise"])
@pytest.mark.parametrize("task", list(Task))
def test_rubric_in_the_prompt_is_rubric_py(task, mode):
    """One source of truth: headings, scopes, labels and level text all come from rr_core.rubric."""
    text = conversation(task, mode).user_text
    rubric = text.split("### Critical Aspects & Scoring Rubric\n", 1)[1].split("### Scoring Methodology", 1)[0]
    assert [d.heading for d in dimensions(task)] == list(PROTOCOL_DIMENSIONS[task])
    for number, dim in enumerate(dimensions(task), start=1):
        assert f"**{number}. {dim.heading}** ({dim.scope})\n" in rubric
        for level in (4, 3, 2, 1):
            assert f"- **{level} ({dim.labels[level - 1]}):** {dim.levels[level - 1]}\n" in rubric + "\n"
    assert rubric.count("- **") == 4 * len(dimensions(task))


def test_rubric_carries_the_evidence_the_checkpoints_were_taught():
    text = conversation(Task.EDIT, "pointwise").user_text.lower()
    for word in ("objects", "colours", "actions", "hallucinated", "background", "style", "lighting", "identity",
                 "shadows", "geometry", "anatomy", "seams", "blur", "noise", "perspective", "floating objects",
                 "wrong direction", "garbled objects", "misspelled", "capitalisation", "unreadable", "distorted"):
        assert word in text, word
    level_one = next(line for line in text.splitlines() if line.startswith("- **1 (major deviations):**")
                     and "text" in line and "n/a" in line)
    assert "no text" in level_one


@pytest.mark.parametrize("mode", ["pointwise", "pairwise"])
@pytest.mark.parametrize("task", list(Task))
def test_prompt_prose_says_what_the_layout_needs(task, mode):
    conv = conversation(task, mode)
    text = conv.user_text
    count = {3: "three", 4: "four"}[len(dimensions(task))]
    assert f"on {count} critical aspects" in text and "1-4 scale" in text
    system = conv.system.lower()
    assert "expert" in system and "evaluator" in system
    assert ("edit" in system) == (task is Task.EDIT)
    methodology = text.split("### Scoring Methodology (CRITICAL)", 1)[1].split("Output your evaluation", 1)[0]
    assert "integer" in methodology and "float" in methodology and "4.0" in methodology and "1.0" in methodology
    if mode == "pointwise":
        assert "refine" in system
        assert "weakness" in methodology and "enrich" in methodology
        assert "like a standard user instruction" in text
    else:
        assert "It's a tie" in text


def test_template_versions_name_the_template_and_its_content():
    conv = build_pointwise(Task.T2I, "a cat", img("red"))
    origin, rest = conv.template_version.split(":", 1)
    name, digest = rest.split("#")
    assert origin == "shipped" and name == "t2i_pointwise@2.0" and len(digest) == 8
    assert len(conv.template_version) <= 64  # the storage column


def test_transformers_and_openai_forms_carry_the_same_content():
    conv = build_pointwise(Task.T2I, "a cat", img("red"))
    chat = conv.to_transformers()
    assert chat[0]["role"] == "system" and chat[1]["role"] == "user"
    kinds = [part["type"] for part in chat[1]["content"]]
    assert kinds.count("image") == 1
    openai = conv.to_openai()
    image_parts = [p for p in openai[1]["content"] if p["type"] == "image_url"]
    url = image_parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.format == "PNG" and decoded.size == (64, 48)
    assert openai[0]["content"] == conv.system


def test_sharegpt_form():
    record = build_pairwise(Task.EDIT, "make it night", img("red"), img("green"), img("blue")).to_sharegpt()
    assert record["messages"][1]["content"].count("<image>") == 3
    assert [i.getpixel((0, 0)) for i in record["images"]] == [(0, 0, 255), (255, 0, 0), (0, 128, 0)]


def test_large_images_are_downscaled_to_the_grid():
    conv = build_pointwise(Task.T2I, "x", img("red", (3000, 1700)))
    width, height = conv.images[0].size
    assert max(width, height) <= 1024 and width % 16 == 0 and height % 16 == 0


def test_request_checks():
    with pytest.raises(InvalidRequest, match="empty"):
        build_pointwise(Task.T2I, "   ", img("red"))
    with pytest.raises(InvalidRequest, match="2001 characters"):
        build_pointwise(Task.T2I, "x" * 2001, img("red"))
    with pytest.raises(InvalidRequest, match="source image"):
        build_pointwise(Task.EDIT, "x", img("red"))


def test_request_text_cannot_inject_an_image_slot():
    conv = build_pointwise(Task.T2I, "write {image_1} on a sign", img("red"))
    assert len(conv.images) == 1 and "write {image_1} on a sign" in conv.user_text


def test_user_template_replaces_the_shipped_one(tmp_path):
    text = (PROMPTS_DIR / "t2i_pointwise.yaml").read_text().replace('version: "2.0"', 'version: "9.9-mine"')
    text = text.replace("User Instruction:", "My own wording. User Instruction:")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    conv = build_pointwise(Task.T2I, "a cat", img("red"), template=path)
    assert conv.template_version.startswith("file:t2i_pointwise@9.9-mine#")
    assert "My own wording" in conv.user_text


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.replace("{image_1}", ""), "image slots"),
    (lambda s: s.replace("{request}", "REQ"), "no {request}"),
    (lambda s: s.replace("mode: pointwise", "mode: sideways"), "mode must be"),
    (lambda s: s + "\nextra: 1\n", "unknown fields"),
])
def test_broken_templates_are_rejected(tmp_path, edit, message):
    path = tmp_path / "bad.yaml"
    path.write_text(edit((PROMPTS_DIR / "t2i_pointwise.yaml").read_text()))
    with pytest.raises(TemplateError, match=message):
        load_template_file(path)


def test_template_for_the_wrong_task_is_rejected():
    with pytest.raises(TemplateError, match="not t2i pointwise"):
        build_pointwise(Task.T2I, "x", img("red"), template=PROMPTS_DIR / "edit_pointwise.yaml")
