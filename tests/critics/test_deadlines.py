"""Bounded waits for a remote critic: one total deadline per critique, a retry budget, a bounded start-up
check and cancellation, against fake OpenAI-compatible servers that refuse, fail, hang, trickle or
send garbage. Deadlines are asserted by elapsed time, with small deadlines so each test is quick."""

from __future__ import annotations

import threading
import time

import pytest

from rr_core.critics.base import CritiqueRequest
from rr_core.critics.openai_critic import CriticTimedOut, OpenAICritic, OpenAICriticConfig
from rr_core.critique import ParseStatus
from rr_core.errors import CriticUnavailable
from rr_core.loop import LoopConfig, LoopDone, RefineLoop
from rr_core.rubric import Task
from tests import critique_texts as texts
from tests.critics.conftest import gradient
from tests.critics.servers import TRICKLE, MisbehavingPeer, answer, free_port
from tests.scripted import PaintGenerator

REQUEST = CritiqueRequest(Task.T2I, "a lighthouse on a cliff at sunset", gradient(48, 32))


def critic_at(url: str, **overrides) -> OpenAICritic:
    values = {"base_url": url, "model": "peer", "timeout_s": 0.6, "max_retries": 3, "backoff_s": 0.01}
    return OpenAICritic(OpenAICriticConfig(**{**values, **overrides}))


def timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except Exception as exc:  # the tests look at what was raised and when
        return exc, time.monotonic() - started


def test_refused_connection_fails_fast_and_names_the_server():
    url = f"http://127.0.0.1:{free_port()}/v1"
    error, elapsed = timed(lambda: critic_at(url, max_retries=2).critique(REQUEST))
    assert isinstance(error, CriticUnavailable) and not isinstance(error, CriticTimedOut)
    assert url in str(error) and "3 attempts" in str(error) and "refused" in str(error)
    assert elapsed < 1.0


@pytest.mark.parametrize("retries", [0, 2])
def test_a_500_is_retried_exactly_the_configured_number_of_times(retries):
    with MisbehavingPeer([(500, "{}", 0.0)]) as peer:
        error, _ = timed(lambda: critic_at(peer.url, max_retries=retries, timeout_s=3.0).critique(REQUEST))
    assert isinstance(error, CriticUnavailable) and peer.url in str(error) and "HTTP 500" in str(error)
    assert len(peer.requests) == retries + 1


def test_backoff_never_runs_past_the_deadline():
    with MisbehavingPeer([(503, "{}", 0.0)]) as peer:
        error, elapsed = timed(lambda: critic_at(peer.url, backoff_s=5.0, timeout_s=0.5).critique(REQUEST))
    assert isinstance(error, CriticTimedOut) and peer.url in str(error) and "between retries" in str(error)
    assert 0.4 < elapsed < 1.5, "the 5 s backoff is cut short by the 0.5 s deadline"


def test_a_hanging_server_is_cut_off_at_the_total_deadline_not_per_attempt():
    with MisbehavingPeer([(200, answer(texts.T2I_OK), 20.0)]) as peer:
        error, elapsed = timed(lambda: critic_at(peer.url, timeout_s=0.5, max_retries=3).critique(REQUEST))
    assert isinstance(error, CriticTimedOut)
    assert peer.url in str(error) and "0.5 s" in str(error) and "waiting for the answer" in str(error)
    assert 0.45 < elapsed < 1.5 and len(peer.requests) == 1  # four 0.5 s attempts would take 2 s


def test_a_trickling_server_is_cut_off_although_every_read_gets_a_byte():
    with MisbehavingPeer([(200, TRICKLE, 0.1)]) as peer:
        error, elapsed = timed(lambda: critic_at(peer.url, timeout_s=0.6).critique(REQUEST))
        time.sleep(0.3)
        disconnects = list(peer.disconnects)
    assert isinstance(error, CriticTimedOut) and "reading the answer" in str(error)
    assert 0.55 < elapsed < 1.5
    assert disconnects, "the connection is closed, so the server can stop"


def test_garbage_is_a_failed_critique_never_a_score():
    with MisbehavingPeer([(200, "\x00\x01 not json", 0.0)]) as peer:
        critique, elapsed = timed(lambda: critic_at(peer.url).critique(REQUEST))
    assert critique.status is ParseStatus.FAILED and critique.reward is None and critique.scores == {}
    assert peer.url in critique.error and elapsed < 0.5


def test_a_streamed_critique_is_bounded_too():
    with MisbehavingPeer([(200, answer(texts.T2I_OK), 20.0)]) as peer:
        error, elapsed = timed(lambda: list(critic_at(peer.url, timeout_s=0.5).stream(REQUEST)))
    assert isinstance(error, CriticTimedOut) and "waiting for the first token" in str(error)
    assert elapsed < 1.5
    with MisbehavingPeer([(200, TRICKLE, 0.1)]) as peer:
        error, elapsed = timed(lambda: list(critic_at(peer.url, timeout_s=0.5).stream(REQUEST)))
    assert isinstance(error, CriticTimedOut) and elapsed < 1.5


def test_a_hanging_models_check_is_bounded_and_names_the_check():
    with MisbehavingPeer([(200, "{}", 0.0)], models_delay_s=20.0) as peer:
        error, elapsed = timed(lambda: critic_at(peer.url, model="", health_timeout_s=0.4))
    assert isinstance(error, CriticTimedOut) and peer.url in str(error) and "GET /models" in str(error)
    assert elapsed < 1.2


@pytest.mark.parametrize("candidates", [1, 2])  # 1 streams the critique, 2 critiques a batch
def test_cancelling_a_run_stops_the_in_flight_critique_within_a_second(candidates):
    with MisbehavingPeer([(200, answer(texts.T2I_OK), 20.0)]) as peer:
        loop = RefineLoop(PaintGenerator(), critic_at(peer.url, timeout_s=30.0), "t2i")
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        config = LoopConfig(rounds=2, candidates=candidates, stop_threshold=None)
        started = time.monotonic()
        events = list(loop.run("a fox", config, cancel=cancel))
        elapsed = time.monotonic() - started
        time.sleep(0.2)
        disconnects = list(peer.disconnects)
    assert isinstance(events[-1], LoopDone) and events[-1].result.stop_reason == "cancelled"
    assert elapsed < 1.3, f"cancelled at 0.3 s, the run ended at {elapsed:.2f} s"
    assert len(disconnects) == candidates, "every request in flight was abandoned"
    assert max(disconnects) - started < 1.3


def test_the_env_twins_set_the_deadline_and_the_budget(monkeypatch):
    from rr_core.critics.factory import critic_config

    monkeypatch.setenv("RR_CRITIC_TIMEOUT", "7.5")
    monkeypatch.setenv("RR_CRITIC_RETRIES", "0")
    config = critic_config("openai", {"base_url": "http://critic.local:8000"})
    assert (config.timeout_s, config.max_retries) == (7.5, 0)
    assert critic_config("openai", {"base_url": "http://c:1", "timeout_s": 2}).timeout_s == 2  # settings win
    monkeypatch.setenv("RR_CRITIC_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="RR_CRITIC_TIMEOUT must be a number of seconds"):
        critic_config("openai", {"base_url": "http://critic.local:8000"})
    monkeypatch.setenv("RR_CRITIC_TIMEOUT", "-1")
    with pytest.raises(ValueError, match="RR_CRITIC_TIMEOUT must be a positive"):
        critic_config("openai", {"base_url": "http://critic.local:8000"})
    monkeypatch.delenv("RR_CRITIC_TIMEOUT")
    monkeypatch.setenv("RR_CRITIC_RETRIES", "many")
    with pytest.raises(ValueError, match="RR_CRITIC_RETRIES must be a whole number"):
        critic_config("openai", {"base_url": "http://critic.local:8000"})


def test_training_configs_carry_the_deadline():
    from rr_core.config import ConfigError
    from training.parrot.critics import CriticSpec
    from training.rl.config import CriticSection

    section = CriticSection(kind="openai", settings={"base_url": "http://c:1"}, timeout_s=5.0, request_retries=1)
    assert (section.settings["timeout_s"], section.settings["max_retries"]) == (5.0, 1)
    with pytest.raises(ConfigError, match="timeout_s applies to a server critic"):
        CriticSection(kind="tiny", timeout_s=5.0)
    spec = CriticSpec("openai", {"base_url": "http://c:1"}, timeout_s=4.0, max_retries=0)
    assert (spec.settings["timeout_s"], spec.settings["max_retries"]) == (4.0, 0)
    with pytest.raises(ValueError, match="positive"):
        CriticSpec("openai", {"base_url": "http://c:1"}, timeout_s=0)
