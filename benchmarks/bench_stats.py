"""Benchmark of the LADIS statistics engine (prints figures; asserts nothing).

    .venv/bin/python benchmarks/bench_stats.py [--quick] [--threads N]

Prints, in one run: one ``mmd_test`` (n = m = 100, d = 512, B = 1000); ``detection_rate``
(R = 100, n = 100, d = 512, B = 1000) against a straightforward loop over permutations that
recomputes MMD^2 from the kernel matrix (the way common drift detectors do it) and the
speed-up; 6 layers at once; d = 4096; per-input scores of a window; and scaling with n
(100, 300, 1000) with the peak memory of each run (each in a fresh subprocess). Medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ladis_core import detection_rate, mmd_test, multi_layer_detection_rate  # noqa: E402
from ladis_core.stats import sample_scores_with_pvalues  # noqa: E402
from ladis_core.stats._threads import machine_is_busy, threads_for  # noqa: E402

N_REF, N_INF = 1000, 300  # reference rows, inference-window rows


def data(seed: int, rows: int, d: int, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(rows, d)) + shift).astype(np.float32)


def median_time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def naive_test(x: torch.Tensor, y: torch.Tensor, n_perm: int, rng: np.random.Generator) -> float:
    """The straightforward permutation test: kernel matrix once, then a Python loop that
    permutes it and recomputes the unbiased MMD^2 for every permutation."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    sigma2 = d2[torch.triu_indices(len(z), len(z), 1).unbind()].median()
    k = sum(torch.exp(-d2 / (2 * sigma2 * s * s)) for s in (0.25, 0.5, 1.0, 2.0, 4.0))
    k = k - torch.diag(k.diag())
    n, m = len(x), len(y)

    def mmd2(mat: torch.Tensor) -> float:
        kxx, kyy, kxy = mat[:n, :n], mat[n:, n:], mat[n:, :n]
        return float(kxx.sum() / (n * (n - 1)) + kyy.sum() / (m * (m - 1)) - 2.0 * kxy.mean())

    observed = mmd2(k)
    count = 0
    for _ in range(n_perm):
        idx = torch.from_numpy(rng.permutation(n + m))
        count += mmd2(k[idx][:, idx]) >= observed
    return (1 + count) / (n_perm + 1)


def scaling_worker(n: int, repeats: int) -> None:
    """Run in a fresh process: one detection rate with n samples; print time and memory."""
    ref, inf = data(0, max(N_REF, 2 * n), 512), data(1, max(N_INF, 2 * n), 512, 0.05)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    detection_rate(ref, inf, n_samples=n, n_repeats=repeats, n_permutations=1000, seed=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "extra_mb": (peak - before) / 1024})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N)")
    parser.add_argument("--scaling-worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.scaling_worker is not None:
        scaling_worker(args.scaling_worker, args.repeats)
        return
    quick = args.quick
    runs_single, runs_rate, runs_big = (10, 3, 1) if quick else (50, 7, 3)
    print(
        f"LADIS stats benchmark — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} "
        f"thread(s), load average {os.getloadavg()[0]:.2f}{' (quick)' if quick else ''}"
    )
    print(
        "thread policy: one torch thread for small work and while the machine is busy "
        f"(load >= CPUs + 1; busy now: {machine_is_busy()}), else the setting above"
    )
    print(f"data: reference {N_REF} rows, inference window {N_INF} rows, float32\n")

    x, y = data(0, 100, 512), data(1, 100, 512, 0.05)
    single = median_time(lambda: mmd_test(x, y, n_permutations=1000, seed=0), runs_single)
    print(
        f"mmd_test            n=m=100, d=512, B=1000          median {single * 1e3:8.2f} ms  (target <= 4 ms)"
    )

    ref, inf = data(2, N_REF, 512), data(3, N_INF, 512, 0.05)
    rate = median_time(lambda: detection_rate(ref, inf, seed=0), runs_rate)
    print(
        f"detection_rate      R=100, n=100, d=512, B=1000     median {rate:8.3f} s   (target <= 0.25 s)"
    )

    rng = np.random.default_rng(0)
    xs, ys = torch.from_numpy(ref[:100]), torch.from_numpy(inf[:100])
    n_naive = 1 if quick else 3
    with threads_for(1e12, torch.device("cpu")):  # the thread count detection_rate used
        threads = torch.get_num_threads()
        naive = median_time(lambda: naive_test(xs, ys, 1000, rng), n_naive)
    print(
        f"naive loop          one test, B=1000                median {naive:8.3f} s   "
        f"({naive / single:.0f}x mmd_test; {threads} thread(s), as detection_rate used)"
    )
    print(
        f"naive loop x R=100  (extrapolated)                         {naive * 100:8.1f} s   "
        f"-> detection_rate is {naive * 100 / rate:.0f}x faster (target >= 100x)"
    )

    layers_ref = {f"layer{i}": data(10 + i, N_REF, 512) for i in range(6)}
    layers_inf = {f"layer{i}": data(20 + i, N_INF, 512, 0.05) for i in range(6)}
    multi = median_time(
        lambda: multi_layer_detection_rate(layers_ref, layers_inf, seed=0), runs_big
    )
    print(f"multi-layer         6 layers x d=512, R=100, B=1000 median {multi:8.3f} s")

    ref4, inf4 = data(4, N_REF, 4096), data(5, N_INF, 4096, 0.05)
    big = median_time(lambda: detection_rate(ref4, inf4, seed=0), runs_big)
    print(f"detection_rate      d=4096, R=100, n=100, B=1000    median {big:8.3f} s")

    scores = median_time(lambda: sample_scores_with_pvalues(ref, inf, seed=0), runs_rate)
    print(f"sample_scores       window 300 vs reference 1000    median {scores:8.3f} s")

    repeats = 10 if quick else 100
    print(f"\nscaling with n (d=512, B=1000, R={repeats}; fresh process each; peak RSS):")
    for n in (100, 300, 1000):
        cmd = [sys.executable, __file__, "--scaling-worker", str(n), "--repeats", str(repeats)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(
            f"  n={n:5d}  {out['seconds']:8.3f} s  ({out['seconds'] / repeats * 1e3:7.1f} ms/test)"
            f"  peak RSS {out['peak_mb']:7.0f} MB  (+{out['extra_mb']:.0f} MB during the run)"
        )


if __name__ == "__main__":
    main()
