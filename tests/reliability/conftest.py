"""The reliability suite: probes a careful tester of a trusted system would run (cross-user
attempts, bad inputs, kills mid-round). Services over the scripted test doubles of tests/studio,
and the launched app of tests/app where a probe crosses the web layer."""

from tests.app.conftest import module_dir  # noqa: F401  (the launched app's data folder fixture)
