"""`python -m ui.screenshots` refuses what would mix a user's data into the README's pictures or
write a file the README does not show; the tour itself runs in tests/app/test_browser.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ui import screenshots


def test_a_data_dir_with_sessions_in_it_is_refused(tmp_path, capsys):
    used = tmp_path / "data"
    used.mkdir()
    (used / "studio.sqlite3").write_bytes(b"")
    with pytest.raises(SystemExit):
        screenshots.main(["--out", str(tmp_path / "shots"), "--data-dir", str(used)])
    assert "is not empty; the tour needs a fresh folder" in capsys.readouterr().err
    assert not (tmp_path / "shots").exists()


def test_only_the_readme_views_are_shot(tmp_path):
    page = SimpleNamespace(screenshot=lambda path, full_page: open(path, "wb").close())
    assert screenshots.shoot(page, tmp_path, "review") == tmp_path / "review.png"
    assert screenshots.shoot(page, tmp_path, "compare") == tmp_path / "compare.png"
    with pytest.raises(ValueError, match="Unknown screenshot 'settings'; the README shows create, edit"):
        screenshots.shoot(page, tmp_path, "settings")
