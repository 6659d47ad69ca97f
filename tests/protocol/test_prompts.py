import base64
import io

import pytest
from PIL import Image

from rr_core.errors import InvalidRequest, TemplateError
from rr_core.prompts import PROMPTS_DIR, build_pairwise, build_pointwise, load_template_file
from rr_core.rubric import Task, dimensions


def img(color, size=(64, 48)):
    return Image.new("RGB", size, color)


@pytest.mark.parametrize("task", list(Task))
def test_pointwise_prompt_interleaves_images_and_names_every_dimension(task):
    source = img("blue") if task is Task.EDIT else None
    conv = build_pointwise(task, "a red fox in the snow", img("red"), source)
    assert conv.template_version == f"{task.value}_pointwise@1.0"
    assert len(conv.images) == (2 if task is Task.EDIT else 1)
    text = conv.user_text
    assert "a red fox in the snow" in text
    for dim in dimensions(task):
        assert dim.heading in text and dim.levels[2] in text
    if task is Task.EDIT:
        # the source image comes first, then the edited one
        assert conv.images[0].getpixel((0, 0)) == (0, 0, 255)
        assert text.index("Source Image: <image>") < text.index("Edited Image: <image>")


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
    text = (PROMPTS_DIR / "t2i_pointwise.yaml").read_text().replace('version: "1.0"', 'version: "9.9-mine"')
    text = text.replace("The user asked", "My own wording: the user asked")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    conv = build_pointwise(Task.T2I, "a cat", img("red"), template=path)
    assert conv.template_version == "t2i_pointwise@9.9-mine"
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
