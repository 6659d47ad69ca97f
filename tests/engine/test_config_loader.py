"""The one config loader (rr_core.config): YAML + dotted overrides + unknown keys rejected, for the
command line's loop settings and training's run configs alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import training.config
from rr_core import config as loader
from rr_core.config import ConfigError, load_config, load_mapping
from rr_core.loop import LoopConfig
from rr_core.refine import build_parser, loop_config
from rr_core.reward import RewardSpec


@dataclass
class Inner:
    size: int = 1
    names: tuple[str, ...] = ()


@dataclass
class Outer:
    name: str = "run"
    inner: Inner = field(default_factory=Inner)
    reward: RewardSpec = field(default_factory=RewardSpec)
    items: list[Inner] = field(default_factory=list)


def write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_file_then_overrides_into_nested_sections(tmp_path):
    path = write(tmp_path, "name: a\ninner: {size: 2, names: [x, y]}\nitems: [{size: 5}]\n")
    config = load_config(Outer, path, ["inner.size=7", "reward.dimensions=[text_faithfulness]"])
    assert config.name == "a" and config.inner == Inner(7, ("x", "y")) and config.items == [Inner(5)]
    # a nested section with its own from_dict is built by it (the reward's conversions, weights as floats)
    assert config.reward == RewardSpec(dimensions=("text_faithfulness",))


@pytest.mark.parametrize(("text", "overrides", "message"), [
    ("nmae: a\n", [], r"Unknown Outer setting\(s\): nmae; known: inner, items, name, reward"),
    ("inner: {sise: 2}\n", [], r"Unknown inner setting\(s\): sise; known: names, size"),
    ("", ["inner.sise=2"], r"Unknown inner setting\(s\): sise"),
    ("", ["reward.dims=[x]"], r"reward: Unknown reward setting\(s\): dims; known: dimensions, require_all, weights"),
    ("", ["items=[{size: 1, colour: red}]"], r"Unknown items\[0\] setting\(s\): colour"),
    ("", ["name"], "not of the form key=value"),
    ("", ["inner..size=1"], "has an empty key"),
    ("- a list\n", [], "a config file is a YAML mapping"),
])
def test_unknown_keys_and_bad_overrides_are_errors(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, write(tmp_path, text), overrides)


def test_training_uses_the_same_loader():
    assert training.config.load_config is loader.load_config
    assert training.config.ConfigError is loader.ConfigError
    assert training.config.from_mapping is loader.from_mapping


def test_the_command_line_reads_its_loop_file_through_the_loader(tmp_path):
    path = write(tmp_path, "rounds: 4\nreward: {dimensions: [physical_quality]}\n")
    args = build_parser().parse_args(["--prompt", "x", "--out", "o", "--config", str(path), "--set", "candidates=2",
                                      "--set", "stop_threshold=null", "--rounds", "5"])
    config = loop_config(args)
    assert isinstance(config, LoopConfig)
    assert (config.rounds, config.candidates, config.stop_threshold) == (5, 2, None)  # flags win over the file
    assert config.reward.dimensions == ("physical_quality",)


def test_the_command_line_rejects_unknown_loop_keys(tmp_path):
    args = build_parser().parse_args(["--prompt", "x", "--out", "o", "--config", str(write(tmp_path, "round: 3\n"))])
    with pytest.raises(ValueError, match=r"Unknown loop setting\(s\): round"):
        loop_config(args)
    args = build_parser().parse_args(["--prompt", "x", "--out", "o", "--set", "reward.weight=[1]"])
    with pytest.raises(ValueError, match=r"Unknown reward setting\(s\): weight"):
        loop_config(args)


def test_load_mapping_without_a_file():
    assert load_mapping(None, ["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}
