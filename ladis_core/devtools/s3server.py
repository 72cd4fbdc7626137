"""The managed local S3 server: SeaweedFS (``weed mini``) on the loopback interface.

LADIS reaches S3 only through the standard AWS settings; this module runs a local
S3-compatible server so that the whole product works without AWS::

    server = LocalS3Server(".data/s3", port=8333)
    server.start()                     # idempotent; waits until the S3 port answers
    os.environ.update(server.environment())
    ...
    server.stop()                      # SIGTERM, wait, SIGKILL as a last resort

Everything ``weed mini`` opens (S3, master, volume, filer, admin and their gRPC ports)
listens on 127.0.0.1 only. The S3 port is the caller's; the others are chosen free at the
first start and remembered in the data folder, so several servers (the development one
and a test one) run side by side. WebDAV, Iceberg and Lance endpoints are off, telemetry
and the admin UI are off, browsers get no cross-origin access, buckets are not created
implicitly on upload (as on AWS) and volumes are capped at ``volume_size_limit_mb`` (not
preallocated) so a test server stays small. The data folder is 0700 and its credentials
are random (:mod:`ladis_core.devtools.credentials`).

The files of the data folder are listed in :mod:`ladis_core.devtools.files`.

What this SeaweedFS version (4.48) does differently from AWS, checked against the
server, is in ``docs/environment.md``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ladis_core.config import (
    LOCAL_BUCKET,
    LOCAL_REGION,
    LOCAL_S3_HOST,
    LOCAL_S3_PORT,
)
from ladis_core.devtools import credentials, files, launch
from ladis_core.devtools import ports as tcp
from ladis_core.devtools.ports import find_free_port, port_answers, port_is_free
from ladis_core.devtools.processes import is_weed_serving, remove_sockets, terminate
from ladis_core.devtools.status import ServerStatus
from ladis_core.devtools.weed import (
    default_data_dir,
    find_weed_binary,
)
from ladis_core.errors import ServerError

log = logging.getLogger(__name__)


class LocalS3Server:
    """A SeaweedFS S3 server on the loopback interface with a persistent data folder.

    Parameters
    ----------
    data_dir
        Folder for data, PID file, state and log (created on start). Default
        :func:`default_data_dir`.
    port
        The S3 port. The other ports are chosen free and remembered in the folder.
    host
        A loopback address; nothing else is accepted.
    access_key, secret_key
        The one identity the server accepts (full rights). Default: the pair drawn at
        random for this data folder on its first use (``credentials.json``, mode 0600).
    bucket
        Created at start if missing (idempotent).
    weed_binary
        Path of ``weed``; default :func:`find_weed_binary`'s search.
    volume_size_limit_mb
        SeaweedFS volume size cap; volumes grow on demand and are never preallocated.
    die_with_parent
        Linux only: the server gets SIGTERM when the process that started it dies (for
        test servers, so that a killed test run leaves nothing behind).

    Used as a context manager, it starts the server on entry and stops it on exit, unless
    it was already running on entry (then it is left running).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int = LOCAL_S3_PORT,
        host: str = LOCAL_S3_HOST,
        access_key: str | None = None,
        secret_key: str | None = None,
        bucket: str = LOCAL_BUCKET,
        weed_binary: str | os.PathLike[str] | None = None,
        volume_size_limit_mb: int = 64,
        die_with_parent: bool = False,
    ) -> None:
        if not tcp.is_loopback(host):
            raise ServerError(
                f"host {host!r} is not a loopback address; the local S3 server listens on 127.0.0.1 only"
            )
        if not 1 <= int(port) <= 65535:
            raise ServerError(f"port {port} is not a valid TCP port (1-65535)")
        self.data_dir = (
            Path(data_dir if data_dir is not None else default_data_dir()).expanduser().resolve()
        )
        self.port = int(port)
        self.host = host
        self._credentials = credentials.given(access_key, secret_key)
        self.bucket = bucket
        self.weed_binary = weed_binary
        self.volume_size_limit_mb = int(volume_size_limit_mb)
        self.die_with_parent = bool(die_with_parent)
        self._process: subprocess.Popen[bytes] | None = None
        self._launched = False

    # -- credentials -----------------------------------------------------------------
    @property
    def credentials(self) -> credentials.Credentials:
        """The identity of this server (read from, or first drawn into, the data folder)."""
        if self._credentials is None:
            self._credentials = credentials.load_or_create(self.data_dir)
        return self._credentials

    # -- paths -----------------------------------------------------------------------
    @property
    def pid_path(self) -> Path:
        return self.data_dir / files.PID_NAME

    @property
    def state_path(self) -> Path:
        return self.data_dir / files.STATE_NAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / files.LOG_NAME

    @property
    def weed_dir(self) -> Path:
        return self.data_dir / files.WEED_DIR_NAME

    @property
    def endpoint_url(self) -> str:
        """The endpoint of the running server from this folder, else the configured one."""
        host, port = self._effective_address()
        return f"http://{host}:{port}"

    @property
    def bucket_uri(self) -> str:
        return f"s3://{self.bucket}/"

    @property
    def launched(self) -> bool:
        """Whether the last :meth:`start` launched the process (``False`` when it found the
        server already running from this folder and joined it)."""
        return self._launched

    def environment(self) -> dict[str, str]:
        """The AWS variables that point boto3 (and smdebug) at this server: endpoint of
        the running server from this folder (else the configured port), keys, region."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
        }

    # -- lifecycle -------------------------------------------------------------------
    def status(self) -> ServerStatus:
        """Read the PID file and probe the port; never starts, stops or writes anything."""
        pid = files.read_pid(self.pid_path)
        state = files.read_json(self.state_path)
        host = str(state.get("host", self.host))
        port = int(state.get("port", self.port))
        bucket = str(state.get("bucket", self.bucket))
        detail = ""
        running = False
        if pid is not None:
            running = is_weed_serving(pid, self.weed_dir)
            if not running:
                detail = f"stale PID file {self.pid_path} (process {pid} is gone)"
                pid = None
        if not running:
            host, port, bucket = self.host, self.port, self.bucket
        answering = port_answers(port, host)
        if not running and answering:
            owner = tcp.describe_port_owner(port, host)
            detail = f"port {port} on {host} is in use by {owner or 'another process'}"
        return ServerStatus(
            running=running,
            answering=answering,
            pid=pid,
            host=host,
            port=port,
            bucket=bucket,
            data_dir=self.data_dir,
            log_path=self.log_path,
            detail=detail,
        )

    def start(self, *, timeout_s: float = 30.0) -> ServerStatus:
        """Start the server unless it already runs from this folder, wait until the S3
        port answers and the bucket exists, and return the status.

        Raises :class:`ServerError` (one line naming the problem and what to do) when the
        ``weed`` binary is missing, the folder is unwritable, the port is taken, or the
        server does not come up within ``timeout_s`` (with the tail of its log).
        """
        self._launched = False
        if self.status().running:
            return self._join_running(timeout_s=timeout_s)
        weed = find_weed_binary(self.weed_binary)
        files.prepare_data_dir(self.data_dir, self.weed_dir)
        with files.file_lock(self.data_dir / files.LOCK_NAME):  # one start at a time per folder
            if self.status().running or self._adopt_orphan():
                return self._join_running(timeout_s=timeout_s)
            return self._launch(weed, timeout_s=timeout_s)

    def _join_running(self, *, timeout_s: float) -> ServerStatus:
        current = self.status()
        launch.wait_ready(
            current.host, current.port, timeout_s=timeout_s, process=None, log_path=self.log_path
        )
        self._ensure_bucket(current.host, current.port, self.bucket, timeout_s=timeout_s)
        return self.status()

    def _launch(self, weed: Path, *, timeout_s: float) -> ServerStatus:
        tcp.check_port_free(self.port, self.host)
        ports = launch.choose_ports(self.data_dir, s3_port=self.port, host=self.host)
        launch.write_identities(
            self.data_dir / files.IDENTITIES_NAME,
            access_key=self.credentials.access_key,
            secret_key=self.credentials.secret_key,
        )
        launch.write_security(self.data_dir / files.SECURITY_NAME)
        with contextlib.suppress(FileNotFoundError):
            (self.weed_dir / "mini.options").unlink()  # weed mini would reload stale options
        files.rotate_log(self.log_path)
        command = launch.weed_command(
            weed,
            weed_dir=self.weed_dir,
            identities=self.data_dir / files.IDENTITIES_NAME,
            host=self.host,
            port=self.port,
            bucket=self.bucket,
            volume_size_limit_mb=self.volume_size_limit_mb,
            ports=ports,
        )
        process = launch.spawn(
            command, cwd=self.data_dir, log_path=self.log_path, die_with_parent=self.die_with_parent
        )
        self._process = process
        files.write_text(self.pid_path, f"{process.pid}\n")
        state = {
            "pid": process.pid,
            "host": self.host,
            "port": self.port,
            "bucket": self.bucket,
            "ports": ports,
            "weed": str(weed),
            "started_at": time.time(),
        }
        files.write_text(self.state_path, json.dumps(state, indent=2) + "\n")
        try:
            deadline = time.monotonic() + timeout_s
            launch.wait_ready(
                self.host, self.port, timeout_s=timeout_s, process=process, log_path=self.log_path
            )
            launch.wait_volumes_known(
                self.weed_dir,
                self.host,
                ports["master"],
                deadline=deadline,
                process=process,
                log_path=self.log_path,
            )
            self._ensure_bucket(self.host, self.port, self.bucket, timeout_s=timeout_s)
        except BaseException:
            self._terminate(process.pid, timeout_s=5.0)
            self._cleanup_files({**ports, "s3": self.port})
            raise
        self._launched = True
        return self.status()

    def stop(self, *, timeout_s: float = 10.0) -> bool:
        """Stop the server running from this folder: SIGTERM, wait up to ``timeout_s``,
        then SIGKILL. Returns ``False`` when it was not running. Removes the PID file."""
        pid = files.read_pid(self.pid_path)
        state = files.read_json(self.state_path)
        ports = dict(state.get("ports")) if isinstance(state.get("ports"), dict) else {}
        if isinstance(state.get("port"), int):
            ports["s3"] = state["port"]
        if pid is None or not is_weed_serving(pid, self.weed_dir):
            self._cleanup_files({})
            return False
        self._terminate(pid, timeout_s=timeout_s)
        self._cleanup_files(ports)
        self._launched = False
        return True

    def create_bucket(self, name: str, *, timeout_s: float = 10.0) -> str:
        """Create bucket ``name`` on the running server if it does not exist; returns
        ``"s3://name/"``."""
        host, port = self._effective_address()
        self._ensure_bucket(host, port, name, timeout_s=timeout_s)
        return f"s3://{name}/"

    def client(self) -> Any:
        """A boto3 S3 client for this server (imports boto3)."""
        host, port = self._effective_address()
        return self._client(host, port)

    def __enter__(self) -> LocalS3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._launched:
            self.stop()

    def __repr__(self) -> str:
        return f"LocalS3Server({str(self.data_dir)!r}, port={self.port}, host={self.host!r}, bucket={self.bucket!r})"

    # -- helpers ---------------------------------------------------------------------
    def _effective_address(self) -> tuple[str, int]:
        pid = files.read_pid(self.pid_path)
        if pid is not None and is_weed_serving(pid, self.weed_dir):
            state = files.read_json(self.state_path)
            return str(state.get("host", self.host)), int(state.get("port", self.port))
        return self.host, self.port

    def _adopt_orphan(self) -> bool:
        """If this folder's ``weed`` holds the port but the PID file was lost, record it
        again (so ``status``/``stop`` see it) and return ``True``."""
        if port_is_free(self.port, self.host):
            return False
        owner = tcp.port_owner(self.port, self.host)
        if owner is None or not is_weed_serving(owner.pid, self.weed_dir):
            return False
        files.write_text(self.pid_path, f"{owner.pid}\n")
        state = files.read_json(self.state_path)
        state.update(
            {"pid": owner.pid, "host": self.host, "port": self.port, "bucket": self.bucket}
        )
        files.write_text(self.state_path, json.dumps(state, indent=2) + "\n")
        return True

    def _ensure_bucket(self, host: str, port: int, bucket: str, *, timeout_s: float) -> None:
        launch.ensure_bucket(
            self._client(host, port),
            bucket,
            where=f"{host}:{port}",
            access_key=self.credentials.access_key,
            timeout_s=timeout_s,
            log_path=self.log_path,
        )

    def _client(self, host: str, port: int) -> Any:
        return launch.server_client(
            host,
            port,
            access_key=self.credentials.access_key,
            secret_key=self.credentials.secret_key,
        )

    def _terminate(self, pid: int, *, timeout_s: float) -> None:
        terminate(pid, timeout_s=timeout_s)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            with contextlib.suppress(Exception):
                self._process.wait(timeout=1)
            self._process = None

    def _cleanup_files(self, ports: dict[str, Any]) -> None:
        for path in (self.pid_path, self.state_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        remove_sockets(ports)


__all__ = [
    "LocalS3Server",
    "ServerStatus",
    "default_data_dir",
    "find_free_port",
    "find_weed_binary",
    "port_answers",
    "port_is_free",
]
