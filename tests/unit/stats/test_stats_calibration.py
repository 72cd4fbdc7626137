"""Calibration (false-positive rate <= alpha) and power of the tests, with fixed seeds.

Rejection counts of (nearly) independent tests are compared with a one-sided binomial
bound: under a calibrated test, P(count >= bound) <= 0.001.
"""

from __future__ import annotations

import zlib
from math import comb

import numpy as np
import pytest

from ladis_core import baseline_detection_rate, detection_rate, mmd_test

ALPHA = 0.05


def binomial_upper_bound(n_trials: int, p: float = ALPHA, tail: float = 1e-3) -> int:
    """Smallest k with P(Binomial(n_trials, p) >= k) <= tail."""
    cdf = 0.0
    for k in range(n_trials + 1):
        cdf += comb(n_trials, k) * p**k * (1 - p) ** (n_trials - k)
        if 1.0 - cdf <= tail:
            return k + 1
    return n_trials + 1


def null_sample(shape: str, rows: int, d: int, rng: np.random.Generator) -> np.ndarray:
    if shape == "gaussian":
        return rng.normal(size=(rows, d)).astype(np.float32)
    if shape == "student_t3":  # heavy tails, unequal feature scales
        scales = np.geomspace(0.01, 100.0, d)
        return (rng.standard_t(3, size=(rows, d)) * scales).astype(np.float32)
    if shape == "low_rank":  # rank-4 signal embedded in d dims, post-ReLU-like offset
        basis = np.random.default_rng(99).normal(size=(4, d))
        # elementwise, not ``@``: NumPy's BLAS threads would then spin against torch's
        z = (rng.normal(size=(rows, 4, 1)) * basis).sum(axis=1) + 0.01 * rng.normal(size=(rows, d))
        return (np.maximum(z, 0.0) + 3.0).astype(np.float32)
    raise AssertionError(shape)


def test_binomial_bound_helper():
    def tail(n: int, k: int) -> float:
        return sum(comb(n, j) * ALPHA**j * (1 - ALPHA) ** (n - j) for j in range(k, n + 1))

    for n in (100, 300):
        k = binomial_upper_bound(n)
        assert tail(n, k) <= 1e-3 < tail(n, k - 1)


@pytest.mark.parametrize(
    ("shape", "d", "n", "m"),
    [("gaussian", 8, 30, 30), ("student_t3", 64, 30, 45), ("low_rank", 4096, 25, 25)],
)
def test_mmd_test_is_calibrated_on_independent_null_datasets(shape, d, n, m):
    # a seed that is the same in every process (hash() of a str is not), so a failure replays
    rng = np.random.default_rng([zlib.crc32(shape.encode()), d])
    n_tests = 120
    rejections = 0
    for i in range(n_tests):
        x, y = null_sample(shape, n, d, rng), null_sample(shape, m, d, rng)
        rejections += mmd_test(x, y, n_permutations=199, seed=i).p_value < ALPHA
    assert rejections <= binomial_upper_bound(n_tests)


@pytest.mark.parametrize(("shape", "d"), [("gaussian", 8), ("student_t3", 256), ("low_rank", 4096)])
def test_detection_rate_is_calibrated(shape, d):
    # large pools: 100 repetitions of 30 rows out of 3,000 barely overlap -> ~independent
    rng = np.random.default_rng(7)
    rows = 3000 if d < 4096 else 1500
    ref, inf = null_sample(shape, rows, d, rng), null_sample(shape, rows, d, rng)
    res = detection_rate(ref, inf, n_samples=30, n_repeats=100, n_permutations=200, seed=1)
    assert res.n_detected <= binomial_upper_bound(100)
    assert res.rate == pytest.approx(100 * res.n_detected / 100)


def test_baseline_detection_rate_is_calibrated():
    ref = null_sample("student_t3", 6000, 32, np.random.default_rng(8))
    res = baseline_detection_rate(ref, n_samples=30, n_repeats=200, n_permutations=200, seed=2)
    assert res.baseline
    assert res.n_detected <= binomial_upper_bound(200)


def test_pooled_protocol_false_positive_rate_over_many_small_calls():
    """Exact check without any overlap: one repetition per independent dataset."""
    rng = np.random.default_rng(9)
    p_values = []
    for i in range(200):
        ref, inf = null_sample("gaussian", 20, 16, rng), null_sample("gaussian", 20, 16, rng)
        p_values.append(
            detection_rate(ref, inf, n_samples=20, n_repeats=1, n_permutations=99, seed=i).p_values[
                0
            ]
        )
    p_values = np.array(p_values)
    assert np.sum(p_values < ALPHA) <= binomial_upper_bound(200)
    # p-values are roughly uniform, not merely small-tail conservative
    assert 0.4 < p_values.mean() < 0.6
    assert np.sum(p_values < 0.5) >= 80


def test_standardize_stays_calibrated_with_a_small_heavy_tailed_reference():
    """Regression: fitting the scaler on tested reference rows gave ~49 % false positives."""
    rates = []
    for i in range(6):
        rng = np.random.default_rng(100 + i)
        ref, inf = (
            null_sample("student_t3", 200, 256, rng),
            null_sample("student_t3", 300, 256, rng),
        )
        res = detection_rate(ref, inf, standardize=True, n_repeats=20, n_permutations=200, seed=i)
        rates.append(res.rate)
    assert np.mean(rates) <= 12.0


@pytest.mark.parametrize(
    ("change", "d"),
    [("mean", 16), ("variance", 16), ("mean", 4096)],
)
def test_power_against_mean_shift_and_variance_change(change, d):
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(400, d)).astype(np.float32)
    shift, scale = (0.5 if d == 16 else 0.08, 1.0) if change == "mean" else (0.0, 1.5)
    inf = rng.normal(size=(400, d)) * scale + shift
    res = detection_rate(ref, inf.astype(np.float32), n_repeats=20, n_permutations=200, seed=0)
    assert res.rate >= 95.0
    assert res.median_p_value < 0.01


def test_power_of_a_single_test():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(100, 32)).astype(np.float32)
    y = (rng.normal(size=(100, 32)) + 0.4).astype(np.float32)
    assert mmd_test(x, y, n_permutations=500, seed=0).p_value == pytest.approx(1 / 501)
