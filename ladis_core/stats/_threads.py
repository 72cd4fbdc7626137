"""Run small computations on one thread, temporarily.

On a 2-core machine shared with other work, torch's intra-op threads fight for the cores:
a 1-ms matrix product waits for a second thread that the scheduler has given away, and
a whole test becomes 10-50x slower (measured: one ``mmd_test`` 14 ms on one thread vs
220 ms on two under load). Work too small to gain from threading therefore runs with
``torch.set_num_threads(1)``; the previous setting is restored on exit. Nested and
concurrent callers share one reference count, so the setting is restored exactly once,
by the last one out. Large work (a detection rate) keeps the caller's setting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: below this many floating-point operations a call runs on one thread (~10 ms of work)
SMALL_WORK_FLOPS = 3e8

_lock = threading.Lock()
_depth = 0
_saved = 1


@contextmanager
def threads_for(flops: float, device: torch.device) -> Iterator[None]:
    """One intra-op thread for CPU work below :data:`SMALL_WORK_FLOPS`, else unchanged."""
    global _depth, _saved
    if device.type != "cpu" or flops >= SMALL_WORK_FLOPS:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = torch.get_num_threads()
            if _saved != 1:
                torch.set_num_threads(1)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved != 1:
                torch.set_num_threads(_saved)
