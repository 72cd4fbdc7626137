"""Launching ``weed mini``: its ports, identities and command line, and waiting until it
serves (S3 port answering, volumes registered, bucket present)."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

from ladis_core.config import LOCAL_REGION
from ladis_core.devtools.files import PORTS_NAME, log_tail, read_json, write_text
from ladis_core.devtools.ports import (
    _COMPONENTS,
    GRPC_OFFSET,
    _http_answers,
    find_free_port,
    port_is_free,
)
from ladis_core.devtools.processes import _die_with_parent
from ladis_core.devtools.weed import _volume_ids_known, _volume_ids_on_disk
from ladis_core.errors import ServerError
from ladis_core.store.client import new_s3_client
from ladis_core.store.files import write_atomic

log = logging.getLogger(__name__)


def choose_ports(data_dir: Path, *, s3_port: int, host: str) -> dict[str, int]:
    """HTTP ports for master/volume/filer/admin (their gRPC twins at +10000) and the
    S3 gRPC port: those of the last start when still free, else fresh free ones."""
    previous = read_json(data_dir / PORTS_NAME)
    taken = {s3_port}
    ports: dict[str, int] = {}
    for name in _COMPONENTS:
        old = previous.get(name) if isinstance(previous, dict) else None
        if (
            isinstance(old, int)
            and old not in taken
            and old + GRPC_OFFSET not in taken
            and port_is_free(old, host)
            and port_is_free(old + GRPC_OFFSET, host)
        ):
            port = old
        else:
            port = find_free_port(host)
            while port in taken or port + GRPC_OFFSET in taken:
                port = find_free_port(host)
        ports[name] = port
        taken.update({port, port + GRPC_OFFSET})
    s3_grpc = s3_port + GRPC_OFFSET
    if s3_grpc > 65535 or s3_grpc in taken or not port_is_free(s3_grpc, host):
        s3_grpc = find_free_port(host)
        while s3_grpc in taken:
            s3_grpc = find_free_port(host)
    ports["s3_grpc"] = s3_grpc
    write_text(data_dir / PORTS_NAME, json.dumps(ports, indent=2) + "\n")
    return ports


def weed_command(
    weed: Path,
    *,
    weed_dir: Path,
    identities: Path,
    host: str,
    port: int,
    bucket: str,
    volume_size_limit_mb: int,
    ports: dict[str, int],
) -> list[str]:
    """The ``weed mini`` command line: everything on ``host``, WebDAV, Iceberg, Lance,
    telemetry and the admin UI (no password by default) off, no implicit buckets, and
    browsers allowed no cross-origin access (LADIS reaches S3 from Python only)."""
    own_origin = f"http://{host}:{port}"
    command = [
        str(weed),
        "mini",
        f"-dir={weed_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-s3.port={port}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.config={identities}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        f"-bucket={bucket}",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.allowedOrigins={own_origin}",
        f"-filer.allowedOrigins={own_origin}",
        "-master.telemetry=false",
        "-volume.preStopSeconds=0",
        f"-master.volumeSizeLimitMB={volume_size_limit_mb}",
    ]
    for name in _COMPONENTS:
        command.append(f"-{name}.port={ports[name]}")
        command.append(f"-{name}.port.grpc={ports[name] + GRPC_OFFSET}")
    return command


def write_identities(path: Path, *, access_key: str, secret_key: str) -> None:
    """The one identity the server accepts (full rights), mode 600."""
    identities = {
        "identities": [
            {
                "name": "ladis",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    # a temporary file is created 0600, so the secret is never readable by others
    write_atomic(path, (json.dumps(identities, indent=2) + "\n").encode())


def write_security(path: Path) -> None:
    """SeaweedFS's ``security.toml`` (read from the server's working folder, the data
    folder): fresh random JWT keys, so that the filer's and volume servers' own HTTP
    ports, which listen beside S3 on loopback, refuse reads and writes without a token
    signed by the server itself (without it any local user could read every object
    through the filer port, bypassing the S3 credentials). Mode 600, rewritten at each
    start."""
    sections = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
    text = "".join(f'[{name}]\nkey = "{secrets.token_hex(32)}"\n\n' for name in sections)
    write_atomic(path, text.encode())


def wait_ready(
    host: str,
    port: int,
    *,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None,
    log_path: Path,
) -> None:
    """Wait until an HTTP server answers on ``host:port``; :class:`ServerError` with the
    tail of the log when ``process`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise ServerError(
                f"the S3 server exited during start-up (code {process.returncode}); "
                f"{log_tail(log_path)}"
            )
        if _http_answers(host, port):
            return
        if time.monotonic() > deadline:
            raise ServerError(
                f"the S3 server did not answer on {host}:{port} within {timeout_s:g} s; "
                f"{log_tail(log_path)}"
            )
        time.sleep(0.1)


def wait_volumes_known(
    weed_dir: Path,
    host: str,
    master_port: int,
    *,
    deadline: float,
    process: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    """Wait until the master knows every volume on disk. After a restart the S3 port
    answers before the volume server's first heartbeat reaches the master (seconds
    under load); reads of existing objects fail with InternalError until then."""
    on_disk = _volume_ids_on_disk(weed_dir)
    if not on_disk:
        return
    known: set[int] = set()
    while True:
        if process.poll() is not None:
            raise ServerError(
                f"the S3 server exited during start-up (code {process.returncode}); "
                f"{log_tail(log_path)}"
            )
        known = _volume_ids_known(host, master_port)
        if on_disk <= known:
            return
        if time.monotonic() > deadline:
            missing = ", ".join(str(v) for v in sorted(on_disk - known)[:5])
            raise ServerError(
                f"the S3 server started but its volumes ({missing}) were not registered "
                f"in time; {log_tail(log_path)}"
            )
        time.sleep(0.1)


def server_client(host: str, port: int, *, access_key: str, secret_key: str) -> Any:
    """A boto3 S3 client for the server at ``host:port`` (short timeouts, no retries)."""
    return new_s3_client(
        endpoint_url=f"http://{host}:{port}",
        region=LOCAL_REGION,
        access_key=access_key,
        secret_key=secret_key,
        max_attempts=1,
        connect_timeout=2,
        read_timeout=10,
    )


def ensure_bucket(
    client: Any, bucket: str, *, where: str, access_key: str, timeout_s: float, log_path: Path
) -> None:
    """Create ``bucket`` unless it exists, retrying until ``timeout_s``; refused
    credentials are a :class:`ServerError` at once."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ServerError(
                    f"the S3 server at {where} refused the credentials for access key "
                    f"{access_key!r}; it was started with other keys: stop it and start it again"
                ) from exc
            last = code
            if code in ("404", "NoSuchBucket", "NotFound"):
                try:
                    client.create_bucket(Bucket=bucket)
                    return
                except ClientError as create_exc:
                    create_code = str(create_exc.response.get("Error", {}).get("Code", ""))
                    if create_code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        return
                    last = f"{create_code}: {create_exc}"
        except BotoCoreError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise ServerError(
                f"bucket {bucket!r} could not be created on {where} ({last}); {log_tail(log_path)}"
            )
        time.sleep(0.2)


def spawn(
    command: list[str], *, cwd: Path, log_path: Path, die_with_parent: bool
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session, output appended to ``log_path``."""
    log.debug("starting %s", " ".join(command))
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # survives the CLI; Ctrl-C in a shell does not reach it
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
