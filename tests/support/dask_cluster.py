"""A real Dask cluster on 127.0.0.1 for tests: one ``dask scheduler`` process and worker
processes (``--no-nanny``, one thread each, so a worker's PID is the process that runs
windows), started on free ports and stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ladis_core.devtools.ports import find_free_port, port_answers

REPO = Path(__file__).resolve().parents[2]


class DaskTestCluster:
    """``address``: the scheduler's ``tcp://127.0.0.1:<port>``; ``workers``: the worker
    processes (``subprocess.Popen``), in start order."""

    def __init__(self, log_dir: Path, *, workers: int = 2) -> None:
        self.log_dir = log_dir
        self.port = find_free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.scheduler = self._spawn(
            "scheduler",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-dashboard",
        )
        self.workers: list[subprocess.Popen] = []
        try:
            self._wait_for_scheduler()
            for _ in range(workers):
                self.add_worker()
            self.wait_for_workers(workers)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, module: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
            start_new_session=True,
        )

    def add_worker(self) -> subprocess.Popen:
        worker = self._spawn(
            f"worker{len(self.workers)}",
            "distributed.cli.dask_worker",
            self.address,
            "--nthreads",
            "1",
            "--no-nanny",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--memory-limit",
            "4GiB",
        )
        self.workers.append(worker)
        return worker

    def _wait_for_scheduler(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"the dask scheduler exited ({self.scheduler.returncode})")
            if port_answers(self.port, "127.0.0.1"):
                return
            time.sleep(0.2)
        raise RuntimeError("the dask scheduler did not start")

    def wait_for_workers(self, count: int, timeout_s: float = 120) -> None:
        from distributed import Client

        with Client(self.address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout_s)

    def kill(self, worker: subprocess.Popen) -> None:
        """SIGKILL a worker (as a crash would)."""
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    def stop(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
