"""Benchmark: building the demo world, stage by stage (issue 5's time targets).

In one run, against a local SeaweedFS server started for the purpose (127.0.0.1, a free
port, a temporary data folder, stopped by PID at the end):

1. ``--quick`` world (target ≤ 2 min on 2 cores), then the same call again (everything
   skipped: how fast a re-run of ``make demo`` is);
2. the full world (target ≤ 10 min on 2 cores).

Each build prints its timings per stage, the closing note (accuracy, attack success
rates, per-hour detection rates, the per-layer table) and the wall time.

Usage: ``python benchmarks/bench_demo.py [--only quick|full] [--threads N] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ladis_core import demo  # noqa: E402
from ladis_core.devtools.s3server import LocalS3Server, find_free_port  # noqa: E402
from ladis_core.progress import log_progress  # noqa: E402


def build(name: str, world: str, options: demo.DemoOptions) -> float:
    logger = logging.getLogger(f"bench.{name}")
    started = time.perf_counter()
    summary = demo.build_world(
        world, options=options, progress=log_progress(logger, min_interval_s=15)
    )
    wall = time.perf_counter() - started
    print(f"\n===== {name}: {wall:.1f} s wall =====")
    print(summary.closing_note())
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("quick", "full"))
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S"
    )
    for noisy in (
        "ladis.server",
        "ladis.serving",
        "ladis.monitor",
        "ladis_core.capture",
        "ladis_core.trials",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    common = {"torch_threads": args.threads, "device": args.device}
    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ladis-bench-demo-") as tmp:
        server = LocalS3Server(Path(tmp) / "s3", port=find_free_port(), die_with_parent=True)
        server.start(timeout_s=60)
        try:
            os.environ.update(server.environment())
            os.environ["LADIS_CACHE_DIR"] = str(Path(tmp) / "cache")
            if args.only in (None, "quick"):
                world = server.create_bucket("bench-quick")
                walls["quick"] = build("quick", world, demo.DemoOptions.quick(**common))
                walls["quick re-run"] = build(
                    "quick re-run", world, demo.DemoOptions.quick(**common)
                )
            if args.only in (None, "full"):
                world = server.create_bucket("bench-full")
                walls["full"] = build("full", world, demo.DemoOptions.full(**common))
        finally:
            server.stop()
    print("\n===== summary (targets: quick ≤ 120 s, full ≤ 600 s on 2 cores) =====")
    for name, wall in walls.items():
        print(f"{name:>14}: {wall:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
