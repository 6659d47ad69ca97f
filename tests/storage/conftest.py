"""Storage fixtures: a migrated database per test module, on SQLite and on PostgreSQL.

PostgreSQL runs when RR_TEST_POSTGRES_URL names a server whose user may CREATE DATABASE (each module
gets a fresh database, dropped afterwards). Without it the postgres params are skipped locally and
fail in CI (env CI set), where they must run: `eval "$(bash .ci/postgres.sh)"` provides the URL.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator

import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from rr_core.critique import Critique, DimensionScore, ParseStatus
from rr_core.rubric import Task, dimension_keys
from storage.db import make_engine, make_session_factory, scratch_postgres_database
from storage.images import ImageStore
from storage.migrate import upgrade_to_head

POSTGRES_ENV = "RR_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {POSTGRES_ENV} is not: run `eval \"$(bash .ci/postgres.sh)\"` first")
    pytest.skip(f"{POSTGRES_ENV} is not set; the PostgreSQL storage tests run in CI")


def fresh_database(kind: str, tmp_dir: os.PathLike[str], module: str) -> Iterator[str]:
    """The URL of an empty database of `kind`, removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{os.path.join(tmp_dir, 'studio.sqlite3')}"
        return
    with scratch_postgres_database(postgres_base_url(), f"rr_{module[:30]}") as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database (not migrated)."""
    tmp_dir = tmp_path_factory.mktemp(f"db-{request.param}")
    yield from fresh_database(request.param, tmp_dir, request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    return ImageStore(tmp_path_factory.mktemp("images"))


def tiny_image(seed: int, size: int = 8) -> PILImage.Image:
    """A small image whose pixels depend on `seed` (distinct seeds give distinct files)."""
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(size * size * 3))
    return PILImage.frombytes("RGB", (size, size), data)


def sample_critique(task: Task | str = Task.T2I, seed: int = 0, status: ParseStatus = ParseStatus.OK) -> Critique:
    """A fully filled critique in the protocol's shape (text written for tests)."""
    task = Task.parse(task)
    rng = random.Random(seed)
    scores = {}
    lines = ["# User Request Analysis", "The request asks for a red kite over a beach.", "# Detailed Judgement"]
    for number, key in enumerate(dimension_keys(task), start=1):
        na = key == "text_rendering"
        score = None if na else round(rng.uniform(1, 4), 1)
        justification = f"Evidence for {key} in sample {seed}."
        scores[key] = DimensionScore(key=key, score=score, not_applicable=na, justification=justification,
                                     raw_score="N/A" if na else f"{score}")
        lines += [f"{number}. {key}:", f"## Justification: {justification}",
                  f"## Score: {'N/A' if na else score}"]
    lines += ["# Summary: decent.", "# User Request Refinement:", "## Refinement Comments: add wind.",
              f"## Refined Request: a red kite over a windy beach, variant {seed}"]
    valid = [s.score for s in scores.values() if s.valid]
    return Critique(task=task, scores=scores, analysis="The request asks for a red kite over a beach.",
                    summary="decent.", refinement_comments="add wind.",
                    refined_request=f"a red kite over a windy beach, variant {seed}", status=status,
                    raw_text="\n".join(lines), reward=(sum(valid) / len(valid) - 1) / 3,
                    reward_dimensions=tuple(k for k, s in scores.items() if s.valid), model_id="tiny-critic",
                    template_version="v1", latency_s=0.25, prompt_tokens=700, completion_tokens=300,
                    constrained=bool(seed % 2))


@pytest.fixture(scope="session")
def new_user_id() -> Callable[[str], str]:
    return lambda prefix="user": f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def make_image() -> Callable[..., PILImage.Image]:
    return tiny_image


@pytest.fixture(scope="session")
def make_critique() -> Callable[..., Critique]:
    return sample_critique
