"""Capture staging under a hostile local user (issue 11, item 3): captures stage in a
per-user 0700 folder, only folders this user owns and closed to others are recovered,
names in staged index files are checked, and a bad folder never fails a capture."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ladis_core import trials
from ladis_core.capture import folders
from tests.support.trials import forge_event_name, index_files, write_trial

pytestmark = pytest.mark.integration


@pytest.fixture
def shared_tmp(tmp_path, monkeypatch) -> Path:
    """A temp folder of its own standing in for /tmp (the folder every user shares)."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.delenv(folders.STAGING_ENV, raising=False)
    return shared


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _staged_step(tmp_path: Path, folder: Path, *, uri: str, step: int, value: float) -> Path:
    """A staging folder as a killed capture into ``uri`` leaves it: owner file and one
    finished step ``step`` (index + event file) whose inputs hold ``value``."""
    scratch = tmp_path / f"scratch-{folder.name}"
    write_trial(scratch, step + 1, first_value=value - step)
    staged = folder / "trial"
    for source in (index_files(scratch)[step], *sorted((scratch / "events").rglob("*"))[-2:]):
        if source.is_file():
            dest = staged / source.relative_to(scratch)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, dest)
    (folder / "owner.json").write_text(json.dumps({"uri": uri, "pid": _dead_pid()}))
    return staged


def _values(trial: Path) -> list[float]:
    data = trials.load_trial(str(trial), mode="PREDICT", layers=["avgpool_output_0"])
    return [round(float(v), 3) for v in data.layers["avgpool_output_0"][:, 0]]


def test_steps_planted_in_the_shared_temp_folder_are_not_published(shared_tmp, tmp_path):
    target = tmp_path / "trial"
    write_trial(target, 2)  # steps 0, 1 (values 0, 1)
    planted = shared_tmp / "ladis-capture-evil"
    _staged_step(tmp_path, planted, uri=str(target), step=2, value=666.0)
    assert write_trial(target, 1, first_value=7.0) == [2]
    assert _values(target) == [0.0, 1.0, 7.0]  # before: 666 was published as step 2
    assert planted.exists()  # someone else's folder is not touched either


def test_a_planted_index_cannot_delete_a_file(shared_tmp, tmp_path):
    target = tmp_path / "trial"
    write_trial(target, 1)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    planted = shared_tmp / "ladis-capture-evil"
    staged = _staged_step(tmp_path, planted, uri=str(target), step=1, value=5.0)
    forge_event_name(index_files(staged)[0], os.path.relpath(victim, staged))
    write_trial(target, 1)
    assert victim.read_text() == "keep me"  # before: unlinked through "../.."


def test_a_planted_non_json_index_does_not_block_captures(shared_tmp, tmp_path):
    target = tmp_path / "trial"
    planted = shared_tmp / "ladis-capture-evil"
    staged = _staged_step(tmp_path, planted, uri=str(target), step=0, value=1.0)
    index_files(staged)[0].write_text("{not json")
    assert write_trial(target, 2) == [0, 1]  # before: JSONDecodeError for every capture


def test_own_orphans_are_recovered_and_a_bad_one_is_kept_aside(shared_tmp, tmp_path, caplog):
    target = tmp_path / "trial"
    write_trial(target, 1)
    base = folders.private_base()
    assert base is not None and oct(base.stat().st_mode & 0o777) == "0o700"
    good = Path(tempfile.mkdtemp(prefix=folders.RUN_PREFIX, dir=base))
    _staged_step(tmp_path, good, uri=str(target), step=1, value=41.0)
    bad = Path(tempfile.mkdtemp(prefix=folders.RUN_PREFIX, dir=base))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    staged = _staged_step(tmp_path, bad, uri=str(target), step=2, value=42.0)
    forge_event_name(index_files(staged)[0], os.path.relpath(victim, staged))
    with caplog.at_level(logging.WARNING):
        written = write_trial(target, 1, first_value=9.0)
    assert victim.read_text() == "keep me"
    assert not good.exists() and not bad.exists()
    assert (base / ("bad-" + bad.name)).is_dir()  # kept for inspection, not retried
    assert any("cannot be published" in r.getMessage() for r in caplog.records)
    assert _values(target)[:2] == [0.0, 41.0] and written == [2]


def test_folders_open_to_others_or_symlinked_are_never_recovered(shared_tmp, tmp_path):
    target = tmp_path / "trial"
    write_trial(target, 1)
    base = folders.private_base()
    assert base is not None
    open_folder = base / f"{folders.RUN_PREFIX}open"
    open_folder.mkdir(mode=0o700)
    _staged_step(tmp_path, open_folder, uri=str(target), step=1, value=13.0)
    open_folder.chmod(0o777)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    _staged_step(tmp_path, elsewhere, uri=str(target), step=1, value=14.0)
    (base / f"{folders.RUN_PREFIX}link").symlink_to(elsewhere, target_is_directory=True)
    write_trial(target, 1, first_value=3.0)
    assert _values(target) == [0.0, 3.0]
    assert open_folder.exists() and elsewhere.exists()


def test_a_hijacked_staging_folder_does_not_block_captures(shared_tmp, tmp_path, caplog):
    base = folders.staging_base()
    base.mkdir(mode=0o777)
    base.chmod(0o777)  # created first by someone else, open to all
    if os.geteuid() == 0:
        os.chown(base, 65534, 65534)
    with caplog.at_level(logging.WARNING):
        assert write_trial(tmp_path / "trial", 2) == [0, 1]
    assert any("not a private folder" in r.getMessage() for r in caplog.records)
    assert list(base.iterdir()) == []  # nothing of ours was staged in it
