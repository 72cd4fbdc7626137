"""store.py against a real SeaweedFS server: the only S3 code LADIS has."""

from __future__ import annotations

import re

import pytest

from ladis_core import store
from ladis_core.devtools.s3server import find_free_port
from ladis_core.errors import DataNotFoundError, StorageError
from ladis_core.store import layout

pytestmark = pytest.mark.integration


def test_round_trip_and_conditional_write(s3_bucket):
    uri = layout.join(s3_bucket, "monitoring", "ep", "J", "results.json")
    assert store.write_json(uri, {"a": 1}, if_absent=True)
    assert store.read_json(uri) == {"a": 1}
    # a second create of the same key must not overwrite (results are written once)
    assert not store.write_json(uri, {"a": 2}, if_absent=True)
    assert store.read_json(uri) == {"a": 1}
    assert store.exists(uri)
    store.delete(uri)
    assert not store.exists(uri)


def test_listing_incremental_mirror_and_children(s3_bucket, tmp_path):
    prefix = layout.join(s3_bucket, "trials", "ep", "inference")
    for step in range(5):
        store.write_bytes(layout.join(prefix, "events", f"{step:012d}.bin"), bytes([step]) * 10)
    listed = store.list_objects(prefix)
    assert [info.size for info in listed] == [10] * 5
    after = store.list_objects(prefix, start_after=listed[1].uri)
    assert [info.uri for info in after] == [info.uri for info in listed[2:]]
    # StartAfter equal to the prefix itself is never sent (SeaweedFS would list nothing)
    assert len(store.list_objects(prefix, start_after=prefix + "/")) == 5

    cache = tmp_path / "cache"
    assert len(store.mirror_prefix(prefix, cache)) == 5
    store.write_bytes(layout.join(prefix, "events", f"{5:012d}.bin"), b"new")
    assert store.mirror_prefix(prefix, cache) == [f"events/{5:012d}.bin"]
    assert (cache / "events" / f"{5:012d}.bin").read_bytes() == b"new"
    assert store.list_children(layout.join(s3_bucket, "trials")) == ["ep"]


def test_listing_paginates_past_1000_keys(s3_bucket):
    prefix = layout.join(s3_bucket, "many")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: store.write_bytes(layout.join(prefix, f"{i:05d}"), b"x"), range(1100)
            )
        )
    assert len(store.list_objects(prefix)) == 1100


def test_missing_object_and_bucket(s3_bucket):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        store.read_bytes(layout.join(s3_bucket, "nope.json"))
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-x' does not exist"):
        store.read_bytes("s3://no-such-bucket-x/key")


def test_wrong_credentials_are_refused_without_leaking_them(s3_bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "definitely-wrong-secret-value")
    with pytest.raises(StorageError, match="access denied") as info:
        store.read_bytes(layout.join(s3_bucket, "x"))
    assert "definitely-wrong-secret-value" not in str(info.value)


def test_unreachable_endpoint_gives_clear_error(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{find_free_port()}")
    with pytest.raises(StorageError, match="cannot reach S3"):
        store.check_bucket("s3://ladis/")


def test_mirror_fetches_a_replaced_object_of_the_same_size(s3_bucket, tmp_path):
    uri = layout.join(s3_bucket, "models", "ep", "model.pt")
    store.write_bytes(uri, b"weights-v1")
    cache = tmp_path / "cache"
    assert store.mirror_prefix(layout.join(s3_bucket, "models", "ep"), cache) == ["model.pt"]
    store.write_bytes(uri, b"weights-v2")
    assert store.mirror_prefix(layout.join(s3_bucket, "models", "ep"), cache) == ["model.pt"]
    assert (cache / "model.pt").read_bytes() == b"weights-v2"
    assert store.mirror_prefix(layout.join(s3_bucket, "models", "ep"), cache) == []


def test_check_bucket_names_a_missing_bucket(s3_env):
    with pytest.raises(StorageError, match="bucket 'absent-bucket-y' does not exist"):
        store.check_bucket("s3://absent-bucket-y/prefix")


def test_verbose_cli_logs_show_no_session_token_header_or_signature(s3_bucket, s3_server, tmp_path):
    """Issue 11, item 13: ``-v`` logs boto's requests; credentials from a profile (as an
    instance role or SSO gives them) are in no environment variable, and still must not
    appear: session token, Authorization header, signature, secret."""
    import os
    import subprocess
    import sys

    keys = s3_server.credentials
    token = "IQoJb3JpZ2luX2VjEXAMPLE" + "t0k3n" * 20
    profile = tmp_path / "credentials"
    profile.write_text(
        "[ladis-test]\n"
        f"aws_access_key_id = {keys.access_key}\n"
        f"aws_secret_access_key = {keys.secret_key}\n"
        f"aws_session_token = {token}\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(profile), AWS_PROFILE="ladis-test")
    run = subprocess.run(
        [sys.executable, "-m", "ladis_core", "-v", "monitor",
         "--reference", s3_bucket + "trials/x/reference",
         "--inference", s3_bucket + "trials/x/inference",
         "--output", s3_bucket + "monitoring/x", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    logs = run.stdout + run.stderr
    assert run.returncode == 2 and "x-amz-security-token" in logs.lower()  # boto did log
    assert token not in logs and keys.secret_key not in logs
    assert "Signature=***" in logs or "Signature:\n***" in logs
    assert not re.search(r"Signature\s*[:=]\s*[0-9a-f]{64}", logs)
    assert "'Authorization': b'AWS4" not in logs
