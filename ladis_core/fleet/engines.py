"""Where the grid's windows run: in this process (``local``) or on a Dask cluster.

Both engines have one small interface — :meth:`submit` a function and its arguments,
:meth:`wait_any` for the first finished futures, :meth:`value` of a finished one — so the
driver (:mod:`ladis_core.fleet.run`) is the same for both. Dask distributed was chosen
over Ray (see the README): it is pure Python beside torch and protobuf 3.20, its
scheduler and workers are ordinary processes that start in a second on 127.0.0.1, and a
worker that dies has its tasks rescheduled on the others.

- ``local``: a thread pool of ``workers`` threads (1 by default: windows run one after
  the other, nothing to start);
- ``dask`` with ``address``: joins a running scheduler (``tcp://host:8786``);
- ``dask`` without it: starts a local cluster of ``workers`` processes, one thread each,
  and stops it on :meth:`close`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from ladis_core.errors import EngineError, InputError

log = logging.getLogger("ladis.fleet")

ENGINES = ("local", "dask", "ray")


class LocalEngine:
    """Windows in this process, on ``workers`` threads."""

    name = "local"

    def __init__(self, *, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ladis-fleet")

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def wait_any(self, futures: Iterable[Any], timeout_s: float | None = None) -> set[Any]:
        done, _ = wait_futures(list(futures), timeout=timeout_s, return_when=FIRST_COMPLETED)
        return set(done)

    def value(self, future: Future) -> Any:
        return future.result()

    def describe(self) -> str:
        return f"local ({self.workers} thread{'s' if self.workers != 1 else ''})"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine:
    """Windows on a Dask cluster: joined at ``address`` or started here."""

    name = "dask"

    def __init__(self, *, address: str | None = None, workers: int = 2) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - it is in requirements.txt
            raise EngineError(f"the dask engine needs the 'distributed' package ({exc})") from None
        self._cluster = None
        try:
            if address:
                self._client = Client(address, timeout="20s", set_as_default=False)
            else:
                self._cluster = LocalCluster(
                    n_workers=max(1, int(workers)),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.WARNING,
                )
                self._client = Client(self._cluster, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            where = address or "a local cluster"
            raise EngineError(f"cannot reach the Dask scheduler at {where}: {exc}") from None
        self.address = address or self._cluster.scheduler_address
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        # pure=False: a retried window is a new task, not the cached failure
        return self._client.submit(fn, *args, pure=False)

    def wait_any(self, futures: Iterable[Any], timeout_s: float | None = None) -> set[Any]:
        from distributed.client import _wait

        # distributed.wait() would use the process's default client; ours is not one
        try:
            done, _ = self._client.sync(
                _wait, list(futures), timeout=timeout_s, return_when="FIRST_COMPLETED"
            )
        except TimeoutError:
            return set()
        return set(done)

    def value(self, future: Any) -> Any:
        return future.result()

    def describe(self) -> str:
        return f"dask at {self.address} ({self.workers} worker{'s' if self.workers != 1 else ''})"

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def make_engine(name: str, *, address: str | None = None, workers: int | None = None) -> Any:
    """The engine called ``name`` (``local``, ``dask``; ``ray`` is refused with the
    reason)."""
    if name == "local":
        if address:
            raise InputError("--address joins a cluster; use it with --engine dask")
        return LocalEngine(workers=workers or 1)
    if name == "dask":
        return DaskEngine(address=address, workers=workers or 2)
    if name == "ray":
        raise InputError(
            "LADIS runs fleets on Dask distributed, not Ray (see the README); use --engine dask"
        )
    raise InputError(f"--engine {name!r} is not one of local, dask")
