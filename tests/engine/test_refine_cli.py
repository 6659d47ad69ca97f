"""The command line end to end with the tiny preset (real tiny models, real code paths)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from rr_core.refine import main, read_batch
from rr_core.errors import InvalidRequest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
FAST = ["--retries", "0"]


def test_single_prompt_writes_images_critiques_and_summary(tmp_path):
    out = tmp_path / "fox"
    code = main(["--prompt", "a red fox in the snow", "--rounds", "2", "--candidates", "2", "--preset", "tiny",
                 "--no-threshold", "--steps", "2", "--out", str(out), "--quiet", *FAST])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "t2i" and summary["models"]["preset"] == "tiny"
    assert len(summary["rounds"]) == 2 and len(summary["reward_history"]) == 2
    for r in range(2):
        for k in range(2):
            assert Image.open(out / f"round_{r}_cand_{k}.png").size == (64, 64)
            critique = json.loads((out / f"round_{r}_cand_{k}.json").read_text())
            assert critique["raw_text"] and critique["model_id"]
            # The tiny critic decodes under the critique grammar, so every critique it writes parses.
            assert critique["status"] == "ok" and critique["reward"] is not None
    assert summary["rounds"][0]["prompt"] == "a red fox in the snow"


def test_edit_session(tmp_path):
    source = tmp_path / "source.png"
    Image.new("RGB", (80, 48), "blue").save(source)
    out = tmp_path / "edit"
    code = main(["--prompt", "make the sky purple", "--image", str(source), "--rounds", "1", "--preset", "tiny",
                 "--steps", "2", "--out", str(out), "--quiet", *FAST])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "edit"
    assert (out / "source.png").exists() and (out / "round_0_cand_0.png").exists()
    critique = json.loads((out / "round_0_cand_0.json").read_text())
    assert critique["task"] == "edit" and critique["status"] == "ok"


def test_bad_inputs_give_an_error_and_exit_code_2(tmp_path, capsys):
    assert main(["--prompt", "   ", "--preset", "tiny", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "empty" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    assert main(["--prompt", "x", "--image", str(broken), "--preset", "tiny", "--out", str(tmp_path / "y"),
                 "--quiet"]) == 2
    assert "not a readable image" in capsys.readouterr().err


def test_batch_file_is_checked_before_any_work(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": "b", "id": "../escape"}\n')
    with pytest.raises(InvalidRequest, match="must be letters"):
        read_batch(path)
    path.write_text('{"prompt": "a"}\nnot json\n')
    with pytest.raises(InvalidRequest, match=":2: not valid JSON"):
        read_batch(path)


def test_batch_resumes_after_interruption(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    Image.new("RGB", (64, 64), "green").save(tmp_path / "src.png")
    lines = [{"id": f"p{i}", "prompt": f"a picture of {i} apples"} for i in range(4)]
    lines.append({"id": "edit", "prompt": "make it red", "image": "src.png"})
    prompts.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "batch"
    command = [sys.executable, "-m", "rr_core.refine", "--batch", str(prompts), "--out", str(out), "--preset",
               "tiny", "--rounds", "2", "--no-threshold", "--steps", "2", "--quiet", *FAST]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("*/summary.json")):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = {p.parent.name for p in out.glob("*/summary.json")}
    assert 1 <= len(finished_before) < len(lines)

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["skipped"] == len(finished_before)
    assert counts["done"] == len(lines) - len(finished_before) and counts["failed"] == 0
    for line in lines:
        summary = json.loads((out / line["id"] / "summary.json").read_text())
        assert summary["prompt"] == line["prompt"] and len(summary["rounds"]) == 2
    assert json.loads((out / "edit" / "summary.json").read_text())["task"] == "edit"


def test_a_users_template_is_used_and_recorded(tmp_path):
    from rr_core.prompts import PROMPTS_DIR

    mine = tmp_path / "house.yaml"
    mine.write_text((PROMPTS_DIR / "t2i_pointwise.yaml").read_text().replace('version: "2.0"', 'version: "house-2"'))
    out = tmp_path / "templated"
    assert main(["--prompt", "a red fox", "--rounds", "1", "--preset", "tiny", "--steps", "2", "--template",
                 str(mine), "--out", str(out), "--quiet", *FAST]) == 0
    assert json.loads((out / "round_0_cand_0.json").read_text())["template_version"].startswith(
        "file:t2i_pointwise@house-2#")


def test_upstream_flag_refuses_settings_that_bend_the_rule(tmp_path, capsys):
    code = main(["--prompt", "a fox", "--upstream", "--rounds", "3", "--preset", "tiny",
                 "--out", str(tmp_path / "u"), "--quiet"])
    assert code == 2 and "upstream's rule fixes rounds" in capsys.readouterr().err


def test_critic_flags_reach_the_preset(tmp_path, capsys, monkeypatch):
    import rr_core.refine as refine

    seen = {}

    def capture(name, **kwargs):
        seen.update(kwargs, name=name)
        raise ValueError("stop here")
    monkeypatch.setattr(refine, "resolve_preset", capture)
    main(["--prompt", "a fox", "--preset", "remote", "--critic-t2i-url", "http://t2i:8000", "--critic-edit-url",
          "http://edit:8000", "--critic-timeout", "12.5", "--critic-retries", "0", "--out", str(tmp_path / "f")])
    assert (seen["critic_t2i_url"], seen["critic_edit_url"], seen["critic_timeout"], seen["critic_retries"]) == (
        "http://t2i:8000", "http://edit:8000", 12.5, 0)
    monkeypatch.undo()
    code = main(["--prompt", "a fox", "--preset", "remote", "--critic-url", "http://c:8000", "--critic-timeout", "0",
                 "--out", str(tmp_path / "g"), "--quiet"])
    assert code == 2 and "critic timeout must be a positive" in capsys.readouterr().err
