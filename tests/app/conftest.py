"""Fixtures of the dashboard tests: one small real world per session, in the session's
real local S3 server (``s3_server`` from ``tests/conftest.py``), and helpers to drive the
app with Streamlit's ``AppTest``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ladis_core.devtools.s3server import LocalS3Server
from tests.support.dash_world import AccessWorld, DashWorld, build, build_access_world
from tests.support.dashboard import chromium


@pytest.fixture(scope="session")
def app_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trial-cache")


@pytest.fixture(scope="session")
def app_world(
    s3_server: LocalS3Server, tmp_path_factory: pytest.TempPathFactory, app_cache_dir: Path
) -> DashWorld:
    """The test world, built once per session in its own bucket."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3_server.environment().items():
            mp.setenv(name, value)
        mp.setenv("LADIS_CACHE_DIR", str(app_cache_dir))
        bucket = s3_server.create_bucket(f"dash-{uuid.uuid4().hex[:12]}")
        return build(bucket)


@pytest.fixture
def app_env(
    s3_env: dict[str, str],
    app_world: DashWorld,
    app_cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[DashWorld]:
    """The S3 environment of the test world, with ``LADIS_S3_URI`` pointing at it."""
    monkeypatch.setenv("LADIS_S3_URI", app_world.uri)
    monkeypatch.setenv("LADIS_CACHE_DIR", str(app_cache_dir))
    yield app_world


@pytest.fixture(scope="session")
def access_world(s3_server: LocalS3Server, app_world: DashWorld) -> AccessWorld:
    """A copy of the test world for the access tests (they write verdicts and jobs), with
    a provenance ``attack`` written in markdown and a job whose results point at the
    original world, which lies outside the copy's allowed sources."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3_server.environment().items():
            mp.setenv(name, value)
        bucket = s3_server.create_bucket(f"access-{uuid.uuid4().hex[:12]}")
        return build_access_world(app_world, bucket)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, one per test module (skipped where it is not installed)."""
    with chromium() as launched:
        yield launched
