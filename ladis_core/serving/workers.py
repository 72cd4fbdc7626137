"""Bounded concurrency for the HTTP endpoint: a fixed pool of connection workers with a
bounded queue, and a total deadline per request.

One thread per connection with no cap let 200 half-sent requests hold 200 threads, and a
per-``recv`` timeout let a body trickled one byte at a time hold one for ever. Now at
most ``workers`` connections are served at once and ``queue`` more wait (without a
thread); past that the accepting thread answers 503 itself, at once. Every request must
arrive whole (request line, headers and body) within its deadline, counted from when a
worker starts reading it: each ``recv`` waits only for the time left
(:class:`DeadlineReader`), and the handler answers 408.
"""

from __future__ import annotations

import contextlib
import io
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

#: connections served at once (the model runs one request at a time anyway)
DEFAULT_WORKERS = 16

#: connections accepted and waiting for a worker, beyond which 503 is answered
DEFAULT_QUEUE = 64

#: seconds a client has to send one whole request (line, headers and body)
DEFAULT_REQUEST_TIMEOUT_S = 30.0


class WorkerPool:
    """``workers`` daemon threads running ``handle(request, client_address)`` for the
    connections :meth:`submit` queues (at most ``queue`` waiting)."""

    def __init__(
        self, handle: Callable[[Any, Any], None], *, workers: int, queue_size: int, name: str
    ) -> None:
        self._handle = handle
        self._queue: queue.Queue[tuple[Any, Any] | None] = queue.Queue(maxsize=queue_size)
        self._workers = workers
        self._name = name
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle = 0
        self.refused = 0

    def submit(self, request: Any, client_address: Any) -> bool:
        """Queue a connection; ``False`` (nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait((request, client_address))
        except queue.Full:
            with self._lock:
                self.refused += 1
            return False
        with self._lock:
            if self._idle == 0 and len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return True

    @property
    def threads(self) -> int:
        return len(self._threads)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            self._handle(*item)

    def close(self) -> None:
        """Let every worker finish its connection and exit (queued ones are dropped)."""
        for _ in self._threads:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)


class DeadlineReader(io.RawIOBase):
    """The read side of a connection: every ``recv`` waits at most until the deadline
    of the request being read (:meth:`start`), so a body trickled one byte at a time
    ends in ``TimeoutError`` when its time is up; without a deadline, at most
    ``idle_s`` per ``recv``. The socket's own timeout (for writes) is left alone."""

    def __init__(self, sock: socket.socket, *, idle_s: float) -> None:
        self._sock = sock
        self._idle_s = idle_s
        self._deadline: float | None = None

    def start(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def stop(self) -> None:
        self._deadline = None

    @property
    def late(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wait = self._idle_s
        if self._deadline is not None:
            wait = min(wait, self._deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("the request deadline passed")
        previous = self._sock.gettimeout()
        self._sock.settimeout(wait)
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(previous)


def lingering_close(request: socket.socket, *, linger_s: float = 1.0) -> None:
    """Close a connection without resetting it: stop writing, read and drop what the
    client still sends (at most ``linger_s``), then close. Closing with unread data
    makes the kernel send a reset, which can destroy an answer (a 408 or 413) before
    the client has read it."""
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + linger_s
        drained = 0
        while drained < (1 << 20) and (left := deadline - time.monotonic()) > 0:
            request.settimeout(left)
            chunk = request.recv(65536)
            if not chunk:
                break
            drained += len(chunk)
    request.close()


def answer_busy(request: socket.socket, body: bytes) -> None:
    """Answer 503 on a connection no worker can take, without blocking the caller."""
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        request.setblocking(False)
        request.send(head + body)
        request.shutdown(socket.SHUT_WR)
        # what the client already sent is read and dropped, so that closing does not
        # reset the connection before the client has read the answer
        request.recv(65536)
