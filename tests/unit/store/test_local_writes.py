"""Local writes never leave a torn file under the final name (issue 11, item 11), and the
ones that must survive a crash are fsynced with their folder."""

from __future__ import annotations

import os

import pytest

from ladis_core import store
from ladis_core.errors import LocalDiskError, StorageError
from tests.support.faults import small_disk


@pytest.mark.parametrize("inject", [False, True], ids=["tmpfs-or-injected", "injected"])
def test_a_full_disk_leaves_no_torn_claim_and_the_next_write_succeeds(
    tmp_path, monkeypatch, inject
):
    with small_disk(
        tmp_path / "disk", size_kib=64, monkeypatch=monkeypatch, inject=inject
    ) as small:
        disk = small.path
        claim = str(disk / "_state" / "claims" / "000000000100.json")
        with pytest.raises(StorageError, match=r"000000000100\.json.*No space left") as raised:
            store.write_bytes(claim, b"x" * 200_000, if_absent=True)
        # before: the torn claim stayed under its name and every later job found it taken
        assert not os.path.exists(claim)
        assert isinstance(raised.value, LocalDiskError) and "free some space" in str(raised.value)
        assert [p.name for p in (disk / "_state" / "claims").iterdir()] == []
        assert store.write_json(claim, {"holder": "job-2"}, if_absent=True) is True
        assert store.read_json(claim) == {"holder": "job-2"}
        assert store.write_json(claim, {"holder": "job-3"}, if_absent=True) is False
        # a plain overwrite that does not fit keeps the old content whole
        with pytest.raises(LocalDiskError):
            store.write_bytes(claim, b"y" * 200_000)
        assert store.read_json(claim) == {"holder": "job-2"}


def test_if_absent_and_durable_writes_fsync_the_file_and_its_folder(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    result = tmp_path / "job" / "results.json"
    assert store.write_json(str(result), {"rate": 1.0}, if_absent=True)
    assert str(result.parent) in synced
    assert any(".results.json." in path for path in synced)  # the file, before its link
    synced.clear()
    bookmark = tmp_path / "_state" / "bookmark.json"
    store.write_json(str(bookmark), {"step": 3}, durable=True)
    assert str(bookmark.parent) in synced and len(synced) == 2
    synced.clear()
    store.write_json(str(tmp_path / "plain.json"), {})
    assert synced == []  # ordinary writes are atomic but not fsynced


def test_racing_if_absent_writers_have_exactly_one_winner(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    uri = str(tmp_path / "claim.json")
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda i: store.write_json(uri, {"i": i}, if_absent=True), range(32)))
    assert wins.count(True) == 1
    assert store.read_json(uri) == {"i": wins.index(True)}
    assert [p.name for p in tmp_path.iterdir()] == ["claim.json"]
