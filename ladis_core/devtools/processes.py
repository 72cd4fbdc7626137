"""The ``weed`` process of a data folder: is a PID ours, and stopping it."""

from __future__ import annotations

import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from ladis_core._process import pid_alive as _pid_alive
from ladis_core.devtools.ports import _COMPONENTS, GRPC_OFFSET
from ladis_core.errors import ServerError

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def is_weed_serving(pid: int, weed_dir: Path) -> bool:
    """Whether ``pid`` is alive and is ``weed`` serving ``weed_dir`` (not a reused PID)."""
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
    return any(arg == f"-dir={weed_dir}" for arg in cmdline)


def terminate(pid: int, *, timeout_s: float) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL (a process already gone is fine)."""
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    try:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except psutil.TimeoutExpired:
            log.warning("S3 server pid %d ignored SIGTERM for %.0f s; killing it", pid, timeout_s)
            process.kill()
            process.wait(timeout=5)
    except psutil.NoSuchProcess:
        pass
    except psutil.AccessDenied as exc:
        raise ServerError(
            f"not allowed to stop the S3 server (pid {pid}); stop it as its owner"
        ) from exc


def remove_sockets(ports: dict[str, Any]) -> None:
    """Remove the unix sockets that ``weed`` leaves in /tmp, named after its ports."""
    numbers = {int(p) for p in ports.values() if isinstance(p, int)}
    numbers.update(
        ports[name] + GRPC_OFFSET for name in _COMPONENTS if isinstance(ports.get(name), int)
    )
    for port in numbers:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                sock.unlink()
