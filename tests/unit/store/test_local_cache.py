"""Pruning the local cache: by age, by size (least recently used first), never a trial a
reader holds, and a CLI that says what it did."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ladis_core import cli
from ladis_core.errors import InputError
from ladis_core.store import local_cache

NOW = datetime.now(UTC)  # the CLI prunes against the real clock


def _trial(root: Path, name: str, *, size: int, days_ago: float) -> Path:
    folder = root / "trials" / name
    (folder / "events").mkdir(parents=True)
    (folder / "events" / "step.tfevents").write_bytes(b"x" * size)
    (folder / local_cache.TRIAL_LOCK).touch()
    manifest = folder / local_cache.TRIAL_MANIFEST
    manifest.write_text(json.dumps({"uri": f"s3://world/trials/{name}/inference"}))
    stamp = (NOW - timedelta(days=days_ago)).timestamp()
    os.utime(manifest, (stamp, stamp))
    return folder


def _model(root: Path, name: str, *, size: int, days_ago: float) -> Path:
    folder = root / "models" / name
    folder.mkdir(parents=True)
    weights = folder / "model.pt"
    weights.write_bytes(b"w" * size)
    stamp = (NOW - timedelta(days=days_ago)).timestamp()
    os.utime(weights, (stamp, stamp))
    os.utime(folder, (stamp, stamp))
    return folder


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    _trial(tmp_path, "old", size=3000, days_ago=10)
    _trial(tmp_path, "recent", size=2000, days_ago=1)
    _model(tmp_path, "weights", size=1000, days_ago=5)
    return tmp_path


def test_listing_is_least_recently_used_first_with_sizes_and_uris(filled: Path) -> None:
    entries = local_cache.list_cache(filled)
    assert [e.path.name for e in entries] == ["old", "weights", "recent"]
    assert [e.kind for e in entries] == ["trials", "models", "trials"]
    assert entries[0].uri == "s3://world/trials/old/inference" and entries[1].uri is None
    assert [e.size_bytes for e in entries][1] == 1000
    assert entries[0].size_bytes > 3000  # events plus manifest


def test_prune_by_age_removes_only_what_was_unused_for_longer(filled: Path) -> None:
    result = local_cache.prune_cache(older_than=timedelta(days=7), root=filled, now=NOW)
    assert [e.path.name for e in result.removed] == ["old"]
    assert not (filled / "trials" / "old").exists()
    assert (filled / "trials" / "recent").is_dir() and (filled / "models" / "weights").is_dir()


def test_prune_by_size_removes_least_recently_used_until_the_rest_fits(filled: Path) -> None:
    dry = local_cache.prune_cache(max_bytes=2500, root=filled, now=NOW, dry_run=True)
    assert [e.path.name for e in dry.removed] == ["old", "weights"]
    assert (filled / "trials" / "old").is_dir()  # a dry run removes nothing
    result = local_cache.prune_cache(max_bytes=2500, root=filled, now=NOW)
    assert [e.path.name for e in result.removed] == ["old", "weights"]
    assert [e.path.name for e in local_cache.list_cache(filled)] == ["recent"]
    assert result.kept_bytes <= 2500 and result.freed_bytes > 4000


def test_a_trial_being_read_is_never_removed(filled: Path) -> None:
    with open(filled / "trials" / "old" / local_cache.TRIAL_LOCK, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as a reader in another process holds it
        result = local_cache.prune_cache(max_bytes=0, root=filled, now=NOW)
    assert [e.path.name for e in result.skipped_busy] == ["old"]
    assert (filled / "trials" / "old").is_dir()
    assert {e.path.name for e in result.removed} == {"weights", "recent"}


def test_prune_needs_a_rule_and_sizes_are_parsed_or_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="say what to prune"):
        local_cache.prune_cache(root=tmp_path)
    assert local_cache.parse_size("500MB") == 500_000_000
    assert local_cache.parse_size("1.5g") == 1_500_000_000
    assert local_cache.parse_size("2048") == 2048
    for bad in ("5XB", "-1GB", "inf", "lots"):
        with pytest.raises(InputError, match="size"):
            local_cache.parse_size(bad)


def test_cli_status_and_prune(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cache", "--dir", str(filled), "status"]) == 0
    out = capsys.readouterr().out
    assert "3 folder(s)" in out and "s3://world/trials/old/inference" in out
    assert cli.main(["cache", "--dir", str(filled), "prune", "--older-than", "100d"]) == 0
    assert "removed 0 folder(s)" in capsys.readouterr().out
    assert (
        cli.main(
            ["cache", "--dir", str(filled), "prune", "--max-size", "10GB", "--older-than", "2d"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "removed 2 folder(s)" in out and "s3://world/trials/old/inference" in out
    assert cli.main(["cache", "--dir", str(filled), "prune"]) == 2
    assert "say what to prune" in capsys.readouterr().err
