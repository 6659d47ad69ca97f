"""Storage speed: rounds logged per second (a 1024x1024 PNG each), listing a user's sessions with
10,000 sessions in the database, and export throughput in pairs per second. Prints figures; not a test.

    python -m bench.storage_speed [--rounds 40] [--postgres-url postgresql+psycopg://...]

PostgreSQL runs when --postgres-url or RR_TEST_POSTGRES_URL is given; the bench creates a scratch
database there (the user needs CREATEDB) and drops it afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy
from PIL import Image
from sqlalchemy import Engine, insert

from rr_core.critique import Critique, DimensionScore, ParseStatus
from rr_core.rubric import Task
from storage import repository as repo
from storage.db import make_engine, make_session_factory, scratch_postgres_database, write_transaction
from storage.export import export_to_file
from storage.export_files import write_zip
from storage.images import PNG_COMPRESS_LEVEL, ImageStore
from storage.migrate import upgrade_to_head
from storage.models import PairJudgement, PairSource, SessionRow, User, utcnow


def machine_info(engines: dict[str, Engine]) -> None:
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
          f"sqlite {__import__('sqlite3').sqlite_version}")
    for name, engine in engines.items():
        if name == "postgresql":
            with engine.connect() as connection:
                print(f"postgresql: {connection.exec_driver_sql('SHOW server_version').scalar()}")


def critique() -> Critique:
    scores = {k: DimensionScore(key=k, score=3.0, justification="fine") for k in
              ("text_faithfulness", "physical_quality")}
    scores["text_rendering"] = DimensionScore(key="text_rendering", not_applicable=True)
    return Critique(task=Task.T2I, scores=scores, status=ParseStatus.OK, raw_text="x" * 2000, reward=0.66,
                    reward_dimensions=("text_faithfulness", "physical_quality"), model_id="bench")


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo_like(seed: int, size: int = 1024) -> Image.Image:
    """A real photograph from scikit-image at size x size (compresses like a generated picture),
    with one pixel set from the seed so every round stores a distinct image."""
    from skimage import data

    image = Image.fromarray(getattr(data, PHOTOS[seed % len(PHOTOS)])()).convert("RGB").resize((size, size))
    image.putpixel((0, 0), (seed % 256, (seed // 256) % 256, 7))
    return image


def png_size_and_ms(image: Image.Image, level: int) -> tuple[int, float]:
    import io

    start = time.perf_counter()
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return len(buffer.getvalue()), (time.perf_counter() - start) * 1000


def bench_rounds(engine: Engine, store: ImageStore, rounds: int) -> float:
    factory = make_session_factory(engine)
    with write_transaction(factory) as s:
        owner = repo.get_or_create_user(s, f"bench-{uuid.uuid4().hex[:8]}").id
        session_id = repo.create_session(s, owner_id=owner, task="t2i", request="bench").id
    images = [photo_like(i) for i in range(rounds)]  # made up front: generation is not storage time
    for level in (6, PNG_COMPRESS_LEVEL):
        measured = [png_size_and_ms(image, level) for image in images[:6]]
        print(f"PNG encoding alone, zlib level {level}{' (used by the store)' if level == PNG_COMPRESS_LEVEL else ''}: "
              f"{statistics.mean(m for _, m in measured):.0f} ms per 1024x1024 photo, "
              f"{statistics.mean(b for b, _ in measured) / 1e6:.2f} MB each")
    start = time.perf_counter()
    for i, image in enumerate(images):
        with write_transaction(factory) as s:
            repo.record_candidate(s, store=store, session_id=session_id, owner_id=owner, request="bench", image=image,
                              critique=critique(), round_index=i)
    return rounds / (time.perf_counter() - start)


def bench_list_sessions(engine: Engine, total: int = 10_000, users: int = 100) -> tuple[float, float]:
    """Median ms to list one user's newest 50 sessions, plain and with a search term."""
    factory = make_session_factory(engine)
    ids = [f"lister-{i}" for i in range(users)]
    with write_transaction(factory) as s:
        s.execute(insert(User), [{"id": u, "display_name": u, "created_at": utcnow()} for u in ids])
        s.execute(insert(SessionRow), [
            {"id": uuid.uuid4().hex, "owner_id": ids[i % users], "task": "t2i", "title": f"session {i}",
             "prompt": f"a prompt about thing {i}", "settings": {}, "created_at": utcnow()} for i in range(total)])
    timings, searches = [], []
    with factory() as s:
        for _ in range(21):
            start = time.perf_counter()
            rows = repo.list_sessions(s, ids[7], limit=50)
            timings.append(time.perf_counter() - start)
            start = time.perf_counter()
            repo.list_sessions(s, ids[7], search="thing 1", limit=50)
            searches.append(time.perf_counter() - start)
        assert len(rows) == 50
    return statistics.median(timings) * 1000, statistics.median(searches) * 1000


def bench_export(engine: Engine, store: ImageStore, pairs: int, out_dir: Path) -> dict[str, float]:
    """Pairs per second exported to JSONL, measured side by side in one run: images hard-linked into a
    folder beside the file (what the app and the CLI write), the same export then packed as a portable
    zip (what a browser download serves), and images embedded as PNG bytes."""
    factory = make_session_factory(engine)
    with write_transaction(factory) as s:
        owner = repo.get_or_create_user(s, f"exporter-{uuid.uuid4().hex[:8]}").id
        session_id = repo.create_session(s, owner_id=owner, task="t2i", request="export bench").id
        candidate_ids = [repo.record_candidate(s, store=store, session_id=session_id, owner_id=owner, request="e",
                                       image=photo_like(10_000 + i, size=64), critique=critique(),
                                       round_index=i).id for i in range(pairs + 1)]
        s.execute(insert(PairJudgement), [
            {"candidate_a_id": candidate_ids[i], "candidate_b_id": candidate_ids[i + 1], "preference": "A", "judge_id": owner,
             "source": PairSource.HUMAN, "derived_from": "", "created_at": utcnow()} for i in range(pairs)])
    rates = {}
    with factory() as s:
        start = time.perf_counter()
        count = export_to_file(s, store, "pairs", out_dir / f"pairs-{owner}.jsonl")
        linked = time.perf_counter() - start
    rates["linked"] = count / linked
    start = time.perf_counter()
    write_zip(out_dir / f"pairs-{owner}.jsonl")
    rates["linked + zip"] = count / (linked + time.perf_counter() - start)
    with factory() as s:
        start = time.perf_counter()
        count = export_to_file(s, store, "pairs", out_dir / f"pairs-{owner}-embedded.jsonl", embed_images=True)
        rates["embedded"] = count / (time.perf_counter() - start)
    return rates


def run(name: str, url: str, args: argparse.Namespace, tmp: Path) -> None:
    engine = make_engine(url)
    upgrade_to_head(engine)
    machine_info({name: engine})
    store = ImageStore(tmp / f"images-{name}")
    rate = bench_rounds(engine, store, args.rounds)
    print(f"[{name}] rounds logged: {rate:.1f} rounds/s (1024x1024 PNG encode + fsync + rows, one writer)")
    plain, search = bench_list_sessions(engine)
    print(f"[{name}] list a user's sessions, 10,000 in DB: {plain:.2f} ms (search: {search:.2f} ms), target < 100 ms")
    rates = bench_export(engine, store, args.pairs, tmp)
    print(f"[{name}] export pairs ({args.pairs}, 64 px images), pairs/s: "
          + ", ".join(f"{mode} {rate:,.0f}" for mode, rate in rates.items()))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--postgres-url", default=os.environ.get("RR_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.sqlite3", args, Path(tmp))
        if args.postgres_url:
            with scratch_postgres_database(args.postgres_url, "rr_bench") as url:
                run("postgresql", url, args, Path(tmp))
        else:
            print("[postgresql] skipped: pass --postgres-url or set RR_TEST_POSTGRES_URL")


if __name__ == "__main__":
    main()
