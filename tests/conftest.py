"""Fixtures shared by the whole test suite.

A real local S3 server (SeaweedFS) is started once per test session, lazily, by the
first test that asks for it, on a free 127.0.0.1 port with its own temporary folder;
it is stopped (by PID) when the session ends, and gets SIGTERM if pytest itself dies.

- ``s3_server`` (session): the running :class:`ladis_core.devtools.s3server.LocalS3Server`
  (``.endpoint_url``, ``.environment()``, ``.client()``, ``.create_bucket(name)``,
  ``.bucket`` = ``"ladis"``, which exists).
- ``s3_env`` (function): the ``AWS_*`` variables of that server set in ``os.environ``
  for the test (endpoint, keys, region; ``AWS_PROFILE``/``AWS_SESSION_TOKEN``/
  ``AWS_ENDPOINT_URL`` removed), so any boto3 client or smdebug reaches it. Yields the
  dict of variables.
- ``s3_bucket`` (function): a fresh, empty bucket with a unique name; yields
  ``"s3://<name>/"`` and also sets ``LADIS_S3_URI`` to it (so ``config.world_uri()``
  points there). Implies ``s3_env``.
- ``s3_client`` (function): a boto3 S3 client for the server. Implies ``s3_env``.
- ``own_s3_server`` (function): a server of the test's own (its own folder and port),
  which the test may kill, freeze and restart (fault injection); its ``AWS_*``
  variables are set like ``s3_env``'s. Stopped by PID at the end.

Set ``LADIS_WEED_BIN`` to use another ``weed`` binary.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ladis_core.devtools.s3server import LocalS3Server, find_free_port
from tests.support.threads import torch_threads


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run the suite's torch work on one thread: on a 2-core CI machine that also runs a
    SeaweedFS server, Streamlit and Chromium, torch's second thread only fights them
    (training steps were measured 20x slower with two threads under such load)."""
    with torch_threads(1):
        yield


_AWS_VARIABLES_TO_CLEAR = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    server = LocalS3Server(
        tmp_path_factory.mktemp("s3server"), port=find_free_port(), die_with_parent=True
    )
    server.start(timeout_s=60)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in _AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    env = s3_server.environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3_bucket(
    s3_server: LocalS3Server, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> str:
    uri = s3_server.create_bucket(f"test-{uuid.uuid4().hex[:16]}")
    monkeypatch.setenv("LADIS_S3_URI", uri)
    return uri


@pytest.fixture
def s3_client(s3_server: LocalS3Server, s3_env: dict[str, str]) -> Any:
    return s3_server.client()


@pytest.fixture
def own_s3_server(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    server = LocalS3Server(tmp_path / "own-s3", port=find_free_port(), die_with_parent=True)
    server.start(timeout_s=60)
    for name in _AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        pid = server.status().pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a test may leave it frozen
        server.stop()
