"""Run CPU work on one thread when more threads would only fight, temporarily.

On a 2-core machine shared with other work, torch's intra-op threads fight for the cores:
every parallel region waits for a thread the scheduler has given to someone else.
Measured here under load: one ``mmd_test`` 14 ms on one thread vs 220 ms on two; a
6-layer detection rate 0.41 s vs 5.8 s. So a computation runs with
``torch.set_num_threads(1)`` when

* it is too small to gain from threads (below :data:`SMALL_WORK_FLOPS`), or
* the machine is busy: the 1-minute load average is at least ``cpu_count + 1``
  (some other process is running besides a 2-thread LADIS computation).

Otherwise the caller's setting is kept. The previous setting is restored on exit; nested
and concurrent callers share one reference count, so it is restored once, by the last
one out. Nothing is changed for GPU work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: below this many floating-point operations a call runs on one thread (~10 ms of work)
SMALL_WORK_FLOPS = 3e8

_lock = threading.Lock()
_depth = 0
_saved = 1


def machine_is_busy() -> bool:
    """True when other processes keep the CPUs busy (1-minute load >= cpu_count + 1)."""
    try:
        return os.getloadavg()[0] >= (os.cpu_count() or 1) + 1
    except (AttributeError, OSError):  # no load average on this platform
        return False


@contextmanager
def threads_for(flops: float, device: torch.device) -> Iterator[None]:
    """One intra-op thread for small or contended CPU work, else the caller's setting."""
    global _depth, _saved
    if device.type != "cpu" or (flops >= SMALL_WORK_FLOPS and not machine_is_busy()):
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
