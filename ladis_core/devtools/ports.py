"""Loopback TCP ports for the local S3 server: free ones, who holds one, whether one answers."""

from __future__ import annotations

import http.client
import ipaddress
import random
import socket
from typing import Any

from ladis_core.config import (
    LOCAL_S3_HOST,
)
from ladis_core.errors import ServerError

#: SeaweedFS derives a component's gRPC port as its HTTP port + 10000 (and some clients,
#: e.g. the admin worker, dial that derived port whatever the flags say)
GRPC_OFFSET = 10000


#: the components besides S3 that listen on an HTTP port and its gRPC twin
_COMPONENTS = ("master", "volume", "filer", "admin")


_PORT_RANGE = (20000, 29999)


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
    process = port_owner(port, host)
    if process is None:
        return ""
    try:
        name = process.name()
        folders = [arg[len("-dir=") :] for arg in process.cmdline() if arg.startswith("-dir=")]
    except Exception:  # noqa: BLE001 - the process may vanish or be inaccessible
        return f"pid {process.pid}"
    where = f", data {folders[0]}" if folders else ""
    return f"{name} (pid {process.pid}{where})"


def port_owner(port: int, host: str) -> Any:
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


def is_loopback(host: str) -> bool:
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


def check_port_free(port: int, host: str) -> None:
    """:class:`ServerError` naming the owner when ``host:port`` is taken."""
    if port_is_free(port, host):
        return
    owner = describe_port_owner(port, host)
    by = f" by {owner}" if owner else ""
    raise ServerError(
        f"port {port} on {host} is already in use{by}; stop that process or pass --port"
    )
