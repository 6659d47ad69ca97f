"""Photograph the app for the README: `python -m ui.screenshots [--out docs/screenshots]`.

Starts the app on a free local port with a fresh data folder (a temporary one unless --data-dir is
given, so the user's own sessions never appear), takes the browser tour of ui.browser (two Create
rounds, one edit, one keyboard review, one A/B pick, a search and an export) and saves create.png,
edit.png, review.png (the Review critiques view), compare.png (the Compare A/B view) and
sessions.png. The tiny preset (the default) makes noise images and nonsense critiques, which is what
the README's screenshots show.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
from pathlib import Path

from PIL import Image

from rr_core.presets import PRESETS
from ui import browser

logger = logging.getLogger("ui.screenshots")
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SHOTS = ("create", "edit", "review", "compare", "sessions")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shoot(page, out: Path, name: str) -> Path:
    """Save the whole page as out/<name>.png."""
    if name not in SHOTS:
        raise ValueError(f"Unknown screenshot {name!r}; the README shows {', '.join(SHOTS)}.")
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def take_tour(page, out: Path, work: Path) -> list[Path]:
    """The tour on an open page of a fresh app, one screenshot per view."""
    shots = []
    browser.run_create(page, "a red fox in the snow", rounds=2)
    shots.append(shoot(page, out, "create"))
    source = work / "source.png"
    Image.new("RGB", (64, 48), (30, 144, 255)).save(source)
    browser.run_edit(page, source, "make the sky purple")
    shots.append(shoot(page, out, "edit"))
    browser.open_annotate(page)
    browser.review_with_keys(page, ["a", "r", "a"])
    browser.wait_text(page, "#annotate-progress", "Reviewed 1")
    shots.append(shoot(page, out, "review"))
    browser.open_compare(page)
    page.wait_for_selector("#pair-left img")
    shots.append(shoot(page, out, "compare"))
    page.locator("#pair-request").click()
    page.keyboard.press("2")
    browser.wait_text(page, "#pair-request", "No pairs left")
    browser.search_and_export(page, "fox")
    shots.append(shoot(page, out, "sessions"))
    return shots


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, start the app, take the tour, stop the app."""
    parser = argparse.ArgumentParser(description="Screenshots of RationalRewards Studio for the README")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for the PNGs (default: docs/screenshots)")
    parser.add_argument("--preset", choices=PRESETS, default="tiny")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="an empty folder for the tour's database and images (default: a temporary one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.data_dir is not None and args.data_dir.exists() and any(args.data_dir.iterdir()):
        parser.error(f"--data-dir {args.data_dir} is not empty; the tour needs a fresh folder.")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rr-screenshots-") as scratch:
        data = args.data_dir or Path(scratch) / "data"
        data.mkdir(parents=True, exist_ok=True)
        os.environ["RR_DATA_DIR"] = str(data)
        os.environ.pop("RR_DATABASE_URL", None)
        shots = run(args.preset, args.out, Path(scratch))
    for path in shots:
        logger.info("wrote %s", path)


def run(preset: str, out: Path, work: Path) -> list[Path]:
    """Start the app with `preset` (data under RR_DATA_DIR), take the tour, close everything."""
    from playwright.sync_api import sync_playwright

    import app
    from studio.container import create_services

    service = create_services(preset)
    service.warm_up()
    demo = app.build_app(service)
    demo.queue(default_concurrency_limit=8)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **app.launch_kwargs(service))
    try:
        with sync_playwright() as playwright:
            chromium = browser.launch_chromium(playwright)
            try:
                page = chromium.new_page(viewport=browser.VIEWPORT)
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#create-prompt textarea")
                return take_tour(page, out, work)
            finally:
                chromium.close()
    finally:
        demo.close()
        service.engine.dispose()


if __name__ == "__main__":
    main()
