"""Fault injection against real servers: a loopback TCP proxy in front of the real
SeaweedFS that cuts chosen response bodies short, and a small full disk.

The proxy forwards every HTTP/1.1 request and response unchanged, except that the body
of the answer to a ``GET`` whose path contains ``cut_path`` is sent only up to ``keep``
bytes, and the connection is then closed: what a client sees when the server dies in
the middle of a body.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest


def _read_head(stream: BinaryIO) -> bytes:
    lines = []
    while True:
        line = stream.readline(65537)
        if not line:
            return b""
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode()
    return None


def _read_body(stream: BinaryIO, head: bytes) -> bytes:
    if (_header(head, "Transfer-Encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size_line = stream.readline()
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            chunk = stream.read(size + 2)
            parts.append(chunk)
            if size == 0:
                return b"".join(parts)
    return stream.read(int(_header(head, "Content-Length") or 0))


class CuttingProxy:
    """``with CuttingProxy(upstream_port, cut_path="events/") as proxy: proxy.url``."""

    def __init__(self, upstream_port: int, *, cut_path: str, keep: int = 16) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.cut_path = cut_path
        self.keep = keep
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError), client:
            upstream = socket.create_connection(self.upstream, timeout=30)
            with upstream:
                from_client = client.makefile("rb")
                from_upstream = upstream.makefile("rb")
                while True:
                    head = _read_head(from_client)
                    if not head:
                        return
                    upstream.sendall(head + _read_body(from_client, head))
                    method, path = head.split(b" ", 2)[:2]
                    answer = _read_head(from_upstream)
                    status = int(answer.split(b" ", 2)[1])
                    body = b""
                    if method != b"HEAD" and status not in (204, 304):
                        body = _read_body(from_upstream, answer)
                    if method == b"GET" and self.cut_path.encode() in path and status == 200:
                        self.cuts += 1
                        client.sendall(answer + body[: self.keep])
                        return
                    client.sendall(answer + body)


class SmallDisk:
    """A folder that holds little: ``path``, ``how`` ("tmpfs" or "injected"), and
    :meth:`grow` to make room afterwards (as freeing space would)."""

    def __init__(self, path: Path, how: str, budget: dict[str, int]) -> None:
        self.path, self.how, self._budget = path, how, budget

    def grow(self, size_kib: int) -> None:
        if self.how == "tmpfs":
            subprocess.run(["mount", "-o", f"remount,size={size_kib}k", str(self.path)], check=True)
        else:
            self._budget["left"] = size_kib * 1024


@contextlib.contextmanager
def small_disk(
    folder: Path, *, size_kib: int, monkeypatch: pytest.MonkeyPatch, inject: bool = False
) -> Iterator[SmallDisk]:
    """A folder that holds at most about ``size_kib`` KiB: a real tmpfs where this machine
    lets us mount one (root) and ``inject`` is false, otherwise writes through
    ``ladis_core.store.files`` (the storage layer's only local write path) fail with
    ENOSPC once ``size_kib`` KiB were written under it."""
    folder.mkdir(parents=True, exist_ok=True)
    budget = {"left": size_kib * 1024}
    mounted = (
        not inject
        and os.geteuid() == 0
        and shutil.which("mount") is not None
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "tmpfs", str(folder)],
            capture_output=True,
        ).returncode
        == 0
    )
    if mounted:
        try:
            yield SmallDisk(folder, "tmpfs", budget)
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    from ladis_core.store import files

    real_fdopen = os.fdopen

    class _Capped:
        def __init__(self, handle: BinaryIO) -> None:
            self._handle = handle

        def write(self, data: bytes) -> int:
            if len(data) > budget["left"]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget["left"] -= len(data)
            return self._handle.write(data)

        def __getattr__(self, name: str):
            return getattr(self._handle, name)

        def __enter__(self) -> _Capped:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

    def fdopen(fd: int, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        return _Capped(handle) if str(folder) in os.readlink(f"/proc/self/fd/{fd}") else handle

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    yield SmallDisk(folder, "injected", budget)
