"""Backend choice from task and checkpoint, without loading any weights."""

from __future__ import annotations

import pytest

from rr_core.generators import GeneratorConfig, UnsupportedGenerator, backend_family, load_generator
from rr_core.generators.tiny import ensure_tiny_edit, ensure_tiny_text_to_image
from rr_core.model_ids import FLUX_KONTEXT_ID, QWEN_IMAGE_EDIT_ID, TEXT_TO_IMAGE_ID


@pytest.mark.parametrize(
    ("task", "model_id", "family"),
    [
        ("t2i", None, "text_to_image"),
        ("t2i", TEXT_TO_IMAGE_ID, "text_to_image"),
        ("t2i", "Qwen/Qwen-Image", "text_to_image"),
        ("edit", None, "flux_kontext"),
        ("edit", FLUX_KONTEXT_ID, "flux_kontext"),
        ("edit", QWEN_IMAGE_EDIT_ID, "qwen_image_edit"),
    ],
)
def test_family_from_task_and_hub_id(task, model_id, family):
    assert backend_family(GeneratorConfig(task=task, model_id=model_id)) == family


def test_family_from_a_local_folder_reads_model_index(tiny_cache, tmp_path):
    edit_folder = ensure_tiny_edit(tiny_cache)
    renamed = tmp_path / "my-editor"
    renamed.symlink_to(edit_folder.resolve(), target_is_directory=True)
    assert backend_family(GeneratorConfig(task="edit", model_id=str(renamed))) == "flux_kontext"
    t2i_folder = ensure_tiny_text_to_image(tiny_cache)
    with pytest.raises(UnsupportedGenerator, match="FluxPipeline"):
        backend_family(GeneratorConfig(task="edit", model_id=str(t2i_folder)))


def test_unknown_edit_model_and_family_are_rejected():
    with pytest.raises(UnsupportedGenerator, match="set family"):
        backend_family(GeneratorConfig(task="edit", model_id="someone/some-editor"))
    assert backend_family(
        GeneratorConfig(task="edit", model_id="someone/some-editor", family="qwen_image_edit")
    ) == ("qwen_image_edit")
    with pytest.raises(UnsupportedGenerator, match="Unknown generator family"):
        backend_family(GeneratorConfig(task="edit", family="sdxl"))
    with pytest.raises(UnsupportedGenerator, match="does edit, not t2i"):
        load_generator(GeneratorConfig(task="t2i", family="flux_kontext"))


def test_4bit_needs_cuda(tiny_cache):
    model_id = str(ensure_tiny_text_to_image(tiny_cache))
    config = GeneratorConfig(task="t2i", model_id=model_id, device="cpu", quantize_4bit=True)
    with pytest.raises(UnsupportedGenerator, match="CUDA"):
        load_generator(config)


def test_a_checkpoint_that_is_not_there_gives_a_clear_error():
    from rr_core.errors import ModelUnavailable
    from rr_core.generators.base import GeneratorConfig
    from rr_core.generators.factory import load_generator

    with pytest.raises(ModelUnavailable, match=r"t2i generator 'black-forest-labs/FLUX.1-schnell'.*RR_T2I_MODEL"):
        load_generator(GeneratorConfig(task="t2i", model_id="black-forest-labs/FLUX.1-schnell", device="cpu"))
