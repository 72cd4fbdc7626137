"""Allowed data sources: which URIs the dashboard may read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ladis_core.access import SourcePolicy
from ladis_core.errors import SourceNotAllowedError


@pytest.fixture
def policy() -> SourcePolicy:
    return SourcePolicy.of(["s3://ladis/", "s3://archive/2025/"])


@pytest.mark.parametrize(
    "uri",
    [
        "s3://ladis/",
        "s3://ladis",
        "s3://ladis/trials/digits/inference",
        "s3://archive/2025/",
        "s3://archive/2025",
        "s3://archive/2025/trials/x/reference",
        " s3://ladis/monitoring/ ",
    ],
)
def test_inside_an_allowed_root(policy: SourcePolicy, uri: str) -> None:
    assert policy.allows(uri)
    assert policy.check(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "s3://ladis-other/",  # same prefix, another bucket
        "s3://other/ladis/",
        "s3://archive/",  # above the allowed prefix
        "s3://archive/2025-old/x",  # a sibling with the same start
        "s3://archive/2024/",
        "s3://ladis/../other/",  # stores disagree on what '..' means
        "s3://ladis/./trials",
        "s3://",
        "https://ladis/",
        "gs://ladis/",
        "",
        "   ",
        "s3://ladis/x\nsecond line",
    ],
)
def test_outside_every_root(policy: SourcePolicy, uri: str) -> None:
    assert not policy.allows(uri)
    with pytest.raises(SourceNotAllowedError) as caught:
        policy.check(uri, what="the trial")
    message = str(caught.value)
    assert "s3://ladis/, s3://archive/2025/" in message, "the refusal names the allow-list"
    assert "LADIS_ALLOWED_SOURCES" in message
    assert caught.value.kind == "source-not-allowed"


def test_local_folders_by_real_path(tmp_path: Path) -> None:
    allowed = tmp_path / "world"
    (allowed / "trials").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (allowed / "link-out").symlink_to(elsewhere)
    policy = SourcePolicy.of([str(allowed)])
    assert policy.allows(str(allowed / "trials"))
    assert policy.allows(f"file://{allowed}/trials/x")
    assert policy.allows(str(allowed / "not-yet-written"))
    assert not policy.allows(str(tmp_path / "world-2"))
    assert not policy.allows(str(allowed / ".." / "elsewhere"))
    # a symlink inside the allowed folder does not lead out of it
    assert not policy.allows(str(allowed / "link-out" / "x"))
    # an S3 URI is never inside a folder, nor a folder inside a bucket
    assert not policy.allows("s3://world/")
    assert not SourcePolicy.of(["s3://ladis/"]).allows(str(allowed))


def test_from_environment_is_the_world_plus_the_allow_list() -> None:
    env = {"LADIS_S3_URI": "s3://team/ladis/", "LADIS_ALLOWED_SOURCES": "s3://a/, s3://b/x/\n/data"}
    policy = SourcePolicy.from_environment(env)
    assert policy.roots == ("s3://team/ladis/", "s3://a/", "s3://b/x/", "/data")
    assert policy.allows("s3://team/ladis/trials") and not policy.allows("s3://ladis/")
    # without LADIS_S3_URI the configured world is the default one
    assert SourcePolicy.from_environment({}).roots == ("s3://ladis/",)


def test_the_home_folder_shorthand_is_resolved(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    policy = SourcePolicy.of(["~/world"])
    assert policy.allows(os.path.join(tmp_path, "world", "x"))
