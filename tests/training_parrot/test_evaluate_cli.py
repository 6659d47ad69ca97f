"""`python -m training.evaluate`: a real command (help, critic choice, pair sets, JSON + Markdown out,
exit codes), and two critics evaluated into one folder keep their own numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rr_core.critics.tiny import ensure_tiny_critic
from rr_core.critique import Preference
from rr_core.rubric import Task
from tests.critics.servers import MisbehavingPeer, answer
from tests.training_parrot.conftest import pair_text
from training.evaluate import EXIT_ERROR, EXIT_NOTHING_JUDGED, EXIT_OK, main, parse_data_arg
from training.parrot.records import read_jsonl
from training.parrot.synthetic import write_synthetic_pairs

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "training.evaluate", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_help_describes_the_command():
    result = _run("--help")
    assert result.returncode == 0
    for needed in ("usage: python -m training.evaluate", "--preset", "--critic-url", "--adapter", "--data",
                   "exit codes"):
        assert needed in result.stdout


def test_no_arguments_is_a_usage_error():
    result = _run()
    assert result.returncode == 2 and "error:" in result.stderr and result.stdout == ""


def test_pair_set_arguments():
    source = parse_data_arg("storage:runs/x/pairs.jsonl")
    assert (source.format, source.path, source.name) == ("storage", "runs/x/pairs.jsonl", "storage")
    named = parse_data_arg("mine=mmrb2-t2i:/data/t2i.json")
    assert (named.format, named.path, named.name) == ("mmrb2-t2i", "/data/t2i.json", "mine")
    for bad in ("storage", "nope:file.json", "storage:"):
        with pytest.raises(Exception, match="expected|unknown data format"):
            parse_data_arg(bad)


def test_missing_data_and_unusable_adapter_exit_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--data", f"storage:{tmp_path / 'none.jsonl'}", "--out", str(tmp_path)])
    assert exit_info.value.code == EXIT_ERROR
    assert "cannot read the pairs: data file not found" in capsys.readouterr().err
    data = write_synthetic_pairs(tmp_path / "syn", n_pairs=1)
    with pytest.raises(SystemExit) as exit_info:
        main(["--adapter", str(tmp_path), "--data", f"storage:{data}", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == EXIT_ERROR
    assert "cannot load the critic" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_critics_in_one_folder(tmp_path, capsys):
    data = write_synthetic_pairs(tmp_path / "syn", n_pairs=2, tie_every=0)
    out = tmp_path / "eval"
    common = ["--data", f"storage:{data}", "--out", str(out), "--one-order", "--no-progress"]

    # 1. The tiny preset (grammar-constrained): every judgement parses.
    assert main(["--preset", "tiny", *common]) == EXIT_OK
    first = json.loads((out / "metrics.json").read_text())
    assert len(first) == 1
    [(tiny_name, tiny)] = first.items()
    assert tiny["overall"]["failures"] == 0 and tiny["overall"]["pairs"] == 2
    assert "accuracy_without_ties" in tiny["overall"]
    assert "| critic | source | pairs |" in (out / "table.md").read_text()

    # 2. The same weights without the grammar and 8 tokens: a different critic, judged afresh, none parses.
    code = main(["--model", str(ensure_tiny_critic()), "--max-new-tokens", "8", *common])
    assert code == EXIT_NOTHING_JUDGED
    rows = json.loads((out / "metrics.json").read_text())
    assert len(rows) == 2 and rows[tiny_name] == tiny
    [other] = [m for name, m in rows.items() if name != tiny_name]
    assert other["overall"]["failures"] == 2 and other["overall"]["accuracy_with_ties"] is None
    assert len(list(read_jsonl(out / "results.jsonl"))) == 4

    # 3. The first critic again: its own results are reused, nothing is judged.
    assert main(["--preset", "tiny", *common]) == EXIT_OK
    assert len(list(read_jsonl(out / "results.jsonl"))) == 4
    assert json.loads((out / "metrics.json").read_text())[tiny_name]["overall"] == tiny["overall"]
    table = capsys.readouterr().out
    assert table.count(tiny_name) >= 2


def test_a_critic_at_a_server_url(tmp_path, capsys):
    """A server that always prefers Image A: right on the A pairs, wrong on the others, never consistent."""
    data = write_synthetic_pairs(tmp_path / "syn", n_pairs=8, tie_every=0, seed=2)
    labels = [json.loads(line)["preference"] for line in data.read_text().splitlines()]
    with MisbehavingPeer([(200, answer(pair_text(Task.T2I, Preference.A)), 0.0)]) as peer:
        code = main(["--critic-url", peer.url, "--critic-model", "peer",
                     "--data", f"synthetic=storage:{data}",
                     "--out", str(tmp_path / "eval"), "--no-progress"])
        assert code == EXIT_OK
        assert len(peer.requests) == 16 and {r["model"] for r in peer.requests} == {"peer"}
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())["peer"]
    source = metrics["by_source"]["synthetic"]
    assert source["accuracy_without_ties"] == labels.count("A") / 8
    assert source["position_consistency"] == 0.0
    assert "| peer | synthetic | 8 | 0 |" in capsys.readouterr().out


def test_an_adapter_loads_on_the_base_its_config_names(tmp_path, monkeypatch):
    """The adapter's own config names its base model; --base-model overrides it."""
    import training.parrot.critics as parrot_critics

    built = []

    def capture(spec):
        built.append(spec)
        raise OSError("stop once the spec is built: no model to load here")

    monkeypatch.setattr(parrot_critics, "build_critic", capture)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base-vl"}))
    data = write_synthetic_pairs(tmp_path / "syn", n_pairs=1)
    for extra, base in (([], "org/base-vl"), (["--base-model", "local/base"], "local/base")):
        with pytest.raises(SystemExit):
            main(["--adapter", str(adapter), *extra, "--data", f"storage:{data}",
                  "--out", str(tmp_path / "o")])
        spec = built.pop()
        assert spec.backend == "transformers"
        assert spec.settings["adapter"] == str(adapter) and spec.settings["model"] == base
        assert spec.settings["tasks"] == ["t2i"]


def test_the_reference_comparable_reading_scores_what_strict_counts_as_failures(tmp_path, capsys):
    """A server that never writes a score: strict judges nothing; the reference's reading sees ties (wrong)."""
    data = write_synthetic_pairs(tmp_path / "syn", n_pairs=4, tie_every=0, seed=2)
    with MisbehavingPeer([(200, answer("These two images look alike to me."), 0.0)]) as peer:
        code = main(["--critic-url", peer.url, "--critic-model", "peer", "--data", f"synthetic=storage:{data}",
                     "--out", str(tmp_path / "eval"), "--no-progress", "--one-order", "--table-metric", "reference"])
    assert code == EXIT_NOTHING_JUDGED
    source = json.loads((tmp_path / "eval" / "metrics.json").read_text())["peer"]["by_source"]["synthetic"]
    assert source["failures"] == 4 and source["reference_evaluated"] == 4 and source["reference_accuracy"] == 0.0
    assert "| peer | synthetic | 4 | 4 | - | - | - | 0.0 |" in capsys.readouterr().out
