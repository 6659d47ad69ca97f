"""The repository as a Space reads it: README front matter, the Space-only torch build, the flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with the Space's YAML front matter"
    return yaml.safe_load(match.group(1))


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(torch|torchvision)==([^\s#]+)", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_front_matter_enables_sign_in_and_runs_app_py():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file()
    assert meta["hf_oauth"] is True
    assert 0 < meta["hf_oauth_expiration_minutes"] <= 43200
    assert set(meta.get("hf_oauth_scopes", [])) <= {"openid", "profile"}  # the app reads only who signed in


def test_front_matter_asks_for_a_python_zerogpu_runs():
    assert front_matter()["python_version"] in {"3.12.12", "3.10.13"}  # hub docs, spaces-zerogpu.md


def test_the_space_installs_a_build_of_the_same_pinned_torch():
    local, space = pins(ROOT / "requirements.txt"), pins(ROOT / "pre-requirements.txt")
    assert set(local) == set(space) == {"torch", "torchvision"}
    for name, version in space.items():
        public, _, build = version.partition("+")
        assert public == local[name], f"{name}: the Space installs {version}, requirements.txt pins {local[name]}"
        assert build.startswith("cu12"), f"{name}: the Space's build must run on CUDA 12 drivers, got {version}"
    assert "download.pytorch.org/whl/cu128" in (ROOT / "pre-requirements.txt").read_text(encoding="utf-8")


def test_requirements_carry_spaces_without_another_torch():
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^spaces[><=]", text, re.M)
    from importlib.metadata import requires

    assert not [r for r in requires("spaces") or [] if re.match(r"torch\b", r)]


def test_the_profile_flag_reaches_the_services(monkeypatch):
    import app

    seen: dict = {}

    class Started(Exception):
        pass

    def fake_create_services(preset, **kwargs):
        seen.update(kwargs)
        raise Started

    monkeypatch.setattr(app, "create_services", fake_create_services)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("RR_PROFILE", raising=False)
    with pytest.raises(Started):
        app.main(["--preset", "tiny", "--profile", "task-4bit"])
    assert seen["plan"].name == "task-4bit" and seen["plan"].quantize_critics
    with pytest.raises(Started):
        app.main(["--preset", "tiny"])
    assert seen["plan"] is None  # off a Space without the flag: the preset's own rules
