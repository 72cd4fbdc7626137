"""Bounded concurrency for the HTTP endpoint: a fixed pool of connection workers with a
bounded queue, and a total deadline per request.

One thread per connection with no cap let 200 half-sent requests hold 200 threads, and a
per-``recv`` timeout let a body trickled one byte at a time hold one for ever. Now at
most ``workers`` connections are served at once and ``queue`` more wait (without a
thread); past that the accepting thread answers 503 itself, at once. Every request must
arrive whole (request line, headers and body) within its deadline, counted from when a
worker starts reading it; the read side of a late connection is then shut, which wakes
the blocked read, and the handler answers 408.
"""

from __future__ import annotations

import contextlib
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


class Deadlines:
    """Shuts the read side of connections whose deadline passed (one daemon thread)."""

    def __init__(self, *, tick_s: float = 0.2) -> None:
        self._lock = threading.Lock()
        self._due: dict[int, tuple[float, socket.socket, Callable[[], None]]] = {}
        self._tick_s = tick_s
        self._stop = threading.Event()
        self.expired = 0
        self._thread = threading.Thread(target=self._run, name="ladis-http-deadlines", daemon=True)
        self._thread.start()

    def start(self, sock: socket.socket, seconds: float, on_expire: Callable[[], None]) -> None:
        with self._lock:
            self._due[id(sock)] = (time.monotonic() + seconds, sock, on_expire)

    def clear(self, sock: socket.socket) -> None:
        with self._lock:
            self._due.pop(id(sock), None)

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            now = time.monotonic()
            with self._lock:
                late = [key for key, (due, _, _) in self._due.items() if due <= now]
                expired = [self._due.pop(key) for key in late]
                self.expired += len(expired)
            for _due, sock, on_expire in expired:
                on_expire()
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RD)  # wakes the blocked read with EOF


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
