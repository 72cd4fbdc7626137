"""Hostile trials, model folders and archives, and broken storage (issue 11, items 1, 2,
4, 10 and the racing model mirrors of 14), against a real SeaweedFS and real trials.

Each test plants what someone who can write the trial (or the model) could plant and
checks that nothing outside the cache is written or read, that the error names the
object, and that nothing half-written stays behind."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from ladis_core import store, trials
from ladis_core.errors import (
    CorruptObjectError,
    InputError,
    StorageUnreachableError,
    UnsafeNameError,
)
from ladis_core.model.store import resolve_model_dir
from tests.support.faults import CuttingProxy
from tests.support.trials import forge_event_name, index_files, write_trial

pytestmark = pytest.mark.integration


def _leftovers(folder: Path) -> list[str]:
    """Temporary or partial files anywhere under ``folder``."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith((".part", ".tmp")) or p.name.startswith(".extract-")
    )


# --------------------------------------------------------------------------- item 1: trial index


def test_an_s3_index_naming_an_absolute_event_file_writes_nothing_outside(s3_bucket, tmp_path):
    uri = s3_bucket + "trials/hostile/inference"
    local = tmp_path / "trial"
    write_trial(local, 2)
    victim = tmp_path / "outside" / "planted.tfevents"
    forge_event_name(index_files(local)[1], str(victim))
    store.upload_dir(local, uri)
    # the attacker also stores the "event file" at the key the reader would fetch
    store.write_bytes(f"{uri}/{str(victim).lstrip('/')}", b"#!/bin/sh\necho owned\n" * 50)
    cache = tmp_path / "cache"
    with pytest.raises(UnsafeNameError, match="000000000001_worker_0.json.*not events/<step>"):
        trials.load_trial(uri, mode="PREDICT", cache_dir=cache)
    assert not victim.exists()
    assert not (tmp_path / "outside").exists()


def test_a_local_index_cannot_make_the_reader_open_another_file(tmp_path):
    trial = tmp_path / "trial"
    write_trial(trial, 2)
    secret = tmp_path / "secret.tfevents"
    secret.write_bytes((trial / "events").rglob("*.tfevents").__next__().read_bytes())
    forge_event_name(index_files(trial)[0], "../secret.tfevents")
    with pytest.raises(UnsafeNameError, match="'../secret.tfevents'"):
        trials.load_trial(str(trial), mode="PREDICT")


def test_a_symlinked_event_folder_leading_outside_the_trial_is_refused(tmp_path):
    trial = tmp_path / "trial"
    write_trial(trial, 1)
    event = next((trial / "events").rglob("*.tfevents"))
    outside = tmp_path / "elsewhere"
    event.parent.rename(outside)
    event.parent.symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="resolves outside"):
        trials.load_trial(str(trial), mode="PREDICT")


@pytest.mark.parametrize(
    "name",
    [
        "events/000000000000/000000000000_worker_0.tfevents/../../../x",
        "events/000000000000/000000000001_worker_0.tfevents",  # another step's file
        "events/000000000000/000000000000_worker_0.json",
        "events//000000000000_worker_0.tfevents",
        "index/000000000/000000000000_worker_0.json",
        12,
    ],
)
def test_only_the_event_file_shape_smdebug_writes_is_accepted(tmp_path, name):
    trial = tmp_path / "trial"
    write_trial(trial, 1)
    index = index_files(trial)[0]
    data = json.loads(index.read_text())
    data["meta"]["event_file_name"] = name
    index.write_text(json.dumps(data))
    with pytest.raises(UnsafeNameError, match="events/<step>/<step>_<worker>.tfevents"):
        trials.load_trial(str(trial), mode="PREDICT")


def test_index_byte_ranges_out_of_bounds_are_corruption(tmp_path):
    trial = tmp_path / "trial"
    write_trial(trial, 1)
    index = index_files(trial)[0]
    data = json.loads(index.read_text())
    data["tensor_payload"][0]["length"] = -1  # read(-1) would read the whole file
    index.write_text(json.dumps(data))
    with pytest.raises(CorruptObjectError, match="byte range"):
        trials.load_trial(str(trial), mode="PREDICT")


# --------------------------------------------------------------------------- item 2: model mirror


@pytest.mark.parametrize("shape", ["absolute", "dotdot"])
def test_a_model_key_leading_outside_the_cache_writes_nothing(
    s3_bucket, tmp_path, monkeypatch, shape
):
    """AWS lists keys like ``models/ep//abs/path`` and ``models/ep/../../x`` as stored;
    this SeaweedFS folds ``//`` into ``/`` and refuses ``..`` (docs/environment.md), so
    the listing AWS would give is injected at the storage layer; the objects are real."""
    from ladis_core.store import transfer

    uri = s3_bucket + "models/ep"
    victim = tmp_path / "outside" / "authorized_keys"
    store.write_bytes(f"{uri}/model.json", b"{}")
    store.write_bytes(f"{uri}/{str(victim).lstrip('/')}", b"ssh-ed25519 AAAA attacker")
    hostile = (
        f"{uri}//{str(victim).lstrip('/')}"
        if shape == "absolute"
        else f"{uri}/{'../' * 12}{str(victim).lstrip('/')}"
    )
    real = list(store.iter_objects(uri))
    listed = [
        store.ObjectInfo(i.uri if "outside" not in i.uri else hostile, i.size, i.etag) for i in real
    ]
    monkeypatch.setattr(transfer, "iter_objects", lambda prefix: iter(listed))
    cache = tmp_path / "cache"
    with pytest.raises(UnsafeNameError, match="authorized_keys.*not a plain relative path"):
        resolve_model_dir(uri, cache_dir=cache)
    assert not victim.exists()
    # every key is checked before any download: not even model.json was fetched
    assert not [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else True


def test_seaweedfs_folds_double_slashes_in_keys(s3_bucket):
    """What the injected listing above stands in for: this server's own behaviour."""
    store.write_bytes(s3_bucket + "models/ep//tmp/x", b"x")
    assert [i.uri for i in store.iter_objects(s3_bucket + "models/ep")] == [
        s3_bucket + "models/ep/tmp/x"
    ]


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/x", "a//b", "a\\b", "", "./a", "a/."])
def test_stored_names_that_are_not_plain_relative_paths_are_refused(tmp_path, name):
    from ladis_core.store.paths import contained_path

    with pytest.raises(UnsafeNameError):
        contained_path(tmp_path, name, what="the test object")


def test_racing_mirrors_of_one_model_both_succeed(s3_bucket, tmp_path):
    """Two endpoints starting at once mirror the same model into the same cache folder;
    the temporary names used to be fixed (``.model.pt.part``), so one rename failed."""
    uri = s3_bucket + "models/race"
    for i in range(8):
        store.write_bytes(f"{uri}/part-{i}.bin", os.urandom(200_000))
    for round_ in range(3):
        cache = tmp_path / f"cache-{round_}"
        barrier = threading.Barrier(4)
        failures: list[BaseException] = []

        def mirror(barrier=barrier, cache=cache, failures=failures) -> None:
            barrier.wait()
            try:
                resolve_model_dir(uri, cache_dir=cache)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(exc)

        threads = [threading.Thread(target=mirror) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert _leftovers(cache) == []


# --------------------------------------------------------------------------- item 4: model.tar.gz


def _archive(path: Path, members: dict[str, bytes | tuple[str, str]]) -> Path:
    """A gzip tar; a value ``("symlink"|"hardlink", target)`` makes a link member."""
    with tarfile.open(path, "w:gz") as tar:
        for name, value in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(value, tuple):
                kind, target = value
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = target
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return path


def test_an_archive_unpacks_only_the_model_files(tmp_path):
    archive = _archive(
        tmp_path / "model.tar.gz",
        {
            "./model.pt": b"weights",
            "./model.json": b"{}",
            "code/inference.py": b"import os; os.system('id')",
            "model.pt.bak": b"x",
        },
    )
    target = resolve_model_dir(str(archive), cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in target.rglob("*")) == [".complete", "model.json", "model.pt"]
    assert (target / "model.pt").read_bytes() == b"weights"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"model.pt": ("symlink", "model.json"), "model.json": b"{}"}, "link or special file"),
        ({"model.json": b"{}", "model.pt": ("hardlink", "model.json")}, "link or special file"),
        ({"model.pt": b"a", "./model.pt": b"b", "model.json": b"{}"}, "model.pt twice"),
        ({"model.json": b"{}"}, "holds no model.pt"),
    ],
)
def test_hostile_archives_are_refused_and_leave_nothing(tmp_path, members, message):
    archive = _archive(tmp_path / "model.tar.gz", members)
    cache = tmp_path / "cache"
    with pytest.raises(InputError, match=message):
        resolve_model_dir(str(archive), cache_dir=cache)
    assert [p.name for p in cache.iterdir()] == []


def test_archive_size_and_member_count_are_bounded(tmp_path, monkeypatch):
    from ladis_core.model import store as model_store

    big = _archive(tmp_path / "big.tar.gz", {"model.pt": b"\0" * 300_000, "model.json": b"{}"})
    monkeypatch.setattr(model_store, "MAX_ARCHIVE_BYTES", 100_000)
    with pytest.raises(InputError, match="more than 100000 bytes"):
        resolve_model_dir(str(big), cache_dir=tmp_path / "cache")
    many = _archive(tmp_path / "many.tar.gz", {f"f{i}": b"" for i in range(50)})
    monkeypatch.setattr(model_store, "MAX_ARCHIVE_MEMBERS", 20)
    with pytest.raises(InputError, match="more than 20 members"):
        resolve_model_dir(str(many), cache_dir=tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_an_archive_in_s3_is_streamed_through_a_file(s3_bucket, tmp_path):
    archive = _archive(tmp_path / "m.tar.gz", {"model.pt": b"w" * 1000, "model.json": b"{}"})
    uri = s3_bucket + "models/packed/model.tar.gz"
    store.write_bytes(uri, archive.read_bytes())
    target = resolve_model_dir(uri, cache_dir=tmp_path / "cache")
    assert (target / "model.pt").read_bytes() == b"w" * 1000
    assert _leftovers(tmp_path / "cache") == []
    assert not list((tmp_path / "cache").glob(".download-*"))


# --------------------------------------------------------------------------- item 10: broken reads


def test_a_body_cut_short_is_a_storage_error_and_leaves_no_partial_file(
    s3_bucket, s3_server, tmp_path, monkeypatch
):
    uri = s3_bucket + "trials/cut/inference"
    write_trial(tmp_path / "trial", 2)
    store.upload_dir(tmp_path / "trial", uri)
    port = int(s3_server.endpoint_url.rsplit(":", 1)[1])
    with CuttingProxy(port, cut_path="/events/", keep=10) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        cache = tmp_path / "cache"
        with pytest.raises(StorageUnreachableError, match=r"broke while reading .*\.tfevents"):
            trials.load_trial(uri, mode="PREDICT", cache_dir=cache)
        assert proxy.cuts >= 1
        assert _leftovers(cache) == []
        assert not list(cache.rglob("*.tfevents"))
        with pytest.raises(StorageUnreachableError, match="broke while reading"):
            store.read_bytes(f"{uri}/events/000000000000/000000000000_worker_0.tfevents")
    # the cache is still good: once the store answers, the next read completes
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    assert trials.load_trial(uri, mode="PREDICT", cache_dir=cache).steps.tolist() == [0, 1]
