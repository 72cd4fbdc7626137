"""Cost caps of on-demand tests, and one test at a time per user.

An on-demand test costs about ``L · R · n² · B`` (the permutation statistics of R tests of
n rows on L layers, one GEMM) plus reading and scoring the window's rows, twice when the
baseline is not cached. The caps bound each factor; each is configurable:

==========================  ===========================  =======
setting                     what it bounds               default
==========================  ===========================  =======
``LADIS_MAX_N``             n, rows per sample           150
``LADIS_MAX_REPEATS``       R, repetitions               200
``LADIS_MAX_PERMUTATIONS``  B, permutations              2000
``LADIS_MAX_STEPS``         steps in the window (rows)   1000
``LADIS_MAX_LAYERS``        layers tested at once        3
==========================  ===========================  =======

Measured with ``benchmarks/bench_on_demand.py`` on 2 cores (busy: load average 7.5–11):
the job's own settings 0.5–1.0 s, each cap alone 1.0–2.5 s, every cap at once 6.7 s
with the window cached (19.5 s when its 1,000 steps are first read from S3).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from ladis_core.errors import BusyError, CostLimitError
from ladis_core.monitoring.results import JobSettings

#: field name → environment variable
_ENV = {
    "max_n": "LADIS_MAX_N",
    "max_repeats": "LADIS_MAX_REPEATS",
    "max_permutations": "LADIS_MAX_PERMUTATIONS",
    "max_steps": "LADIS_MAX_STEPS",
    "max_layers": "LADIS_MAX_LAYERS",
}


@dataclass(frozen=True)
class CostCaps:
    """The most work one on-demand test may ask for."""

    max_n: int = 150
    max_repeats: int = 200
    max_permutations: int = 2000
    max_steps: int = 1000
    max_layers: int = 3

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CostCaps:
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for item in fields(cls):
            text = (env.get(_ENV[item.name]) or "").strip()
            if not text:
                continue
            try:
                value = int(text)
            except ValueError:
                value = 0
            if value < 1:
                raise CostLimitError(f"{_ENV[item.name]}={text!r} must be a whole number ≥ 1")
            values[item.name] = value
        return cls(**values)

    @staticmethod
    def setting(name: str) -> str:
        """The environment variable of cap ``name`` (``"max_n"`` → ``LADIS_MAX_N``)."""
        return _ENV[name]

    def check(
        self,
        settings: JobSettings,
        *,
        after_step: int | None,
        until_step: int | None,
        layers: int,
    ) -> None:
        """Raise :class:`~ladis_core.errors.CostLimitError` naming the first cap exceeded.
        The window must be bounded on both sides (``after_step < step ≤ until_step``)."""
        for value, name, what in (
            (settings.n_samples, "max_n", "n (rows per sample)"),
            (settings.n_repeats, "max_repeats", "R (repetitions)"),
            (settings.n_permutations, "max_permutations", "the number of permutations"),
            (layers, "max_layers", "the number of layers"),
        ):
            self._within(value, name, what)
        if after_step is None or until_step is None:
            raise CostLimitError(
                "on-demand tests need a window with a first and a last step "
                f"(at most {self.max_steps:,} steps, {_ENV['max_steps']})"
            )
        self._within(until_step - after_step, "max_steps", "the window (steps)")

    def _within(self, value: int, name: str, what: str) -> None:
        cap = getattr(self, name)
        if value > cap:
            raise CostLimitError(
                f"{what} is {value:,}; on-demand tests allow at most {cap:,} "
                f"(set by {_ENV[name]}): lower it"
            )


class RunGate:
    """One on-demand test at a time per user, across every session of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, datetime] = {}

    @contextmanager
    def hold(self, user: str) -> Iterator[None]:
        """Hold ``user``'s slot while the block runs; raise
        :class:`~ladis_core.errors.BusyError` when another test of theirs is running."""
        with self._lock:
            started = self._running.get(user)
            if started is not None:
                raise BusyError(
                    f"you already have an on-demand test running (started "
                    f"{started:%H:%M:%S} UTC, perhaps in another tab); one at a time: "
                    "wait for it to finish"
                )
            self._running[user] = datetime.now(UTC)
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(user, None)

    def running(self, user: str) -> bool:
        with self._lock:
            return user in self._running
