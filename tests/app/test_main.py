"""`python app.py` as a user starts it: flags parsed, database upgraded, models loading in the
background, every named endpoint served."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_python_app_py_starts_and_serves_the_named_endpoints(tmp_path):
    port = free_port()
    env = dict(os.environ, RR_DATA_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--preset", "tiny"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, info = time.time() + 120, None
        while time.time() < deadline and process.poll() is None:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/gradio_api/info", timeout=2).json()
                break
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
        assert info is not None, process.stdout.read().decode(errors="replace")[-3000:]
        endpoints = set(info["named_endpoints"])
        assert {"/generate", "/critique", "/refine_round", "/run_loop", "/annotate", "/export"} <= endpoints
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        assert (tmp_path / "studio.sqlite3").exists()  # the database was created and upgraded on start
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_critic_flags_reach_the_services(monkeypatch):
    """`--critic-timeout`, `--critic-retries` and the per-task URLs are passed on, not dropped."""
    import app

    seen: dict = {}

    class Started(Exception):
        pass

    def fake_create_services(preset, **kwargs):
        seen.update(kwargs, preset=preset)
        raise Started

    monkeypatch.setattr(app, "create_services", fake_create_services)
    with pytest.raises(Started):
        app.main(["--preset", "remote", "--critic-url", "http://a:8000/v1", "--critic-edit-url", "http://b:8000/v1",
                  "--critic-timeout", "12.5", "--critic-retries", "0"])
    assert seen["preset"] == "remote" and seen["critic_url"] == "http://a:8000/v1"
    assert seen["critic_edit_url"] == "http://b:8000/v1" and seen["critic_t2i_url"] is None
    assert seen["critic_timeout"] == 12.5 and seen["critic_retries"] == 0
