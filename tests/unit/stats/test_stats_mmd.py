"""mmd_test: the statistic, the p-value and their agreement with a brute-force test."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ladis_core import MMDTestResult, mmd_test
from ladis_core.stats._engine import SwapPool, quadratic_forms

SCALES = {"multi_rbf": (0.25, 0.5, 1.0, 2.0, 4.0), "rbf": (1.0,)}


# ------------------------------------------------------------------ brute-force reference


def _sq_dist(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    return ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)


def _median_bandwidth(z: np.ndarray) -> float:
    d2 = _sq_dist(z)[np.triu_indices(len(z), 1)]
    return float(np.sqrt(np.sort(d2)[(len(d2) - 1) // 2]))


def _kernel(z: np.ndarray, s: float, kernel: str) -> np.ndarray:
    d2 = _sq_dist(z)
    return sum(np.exp(-d2 / (2 * (s * c) ** 2)) for c in SCALES[kernel])


def _mmd2_u(k: np.ndarray, n: int) -> float:
    m = len(k) - n
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.sum() / (n * m)
    )


def brute_force_test(x, y, s, n_perm, seed, kernel="multi_rbf"):
    """Loop over uniform random relabellings of the pooled sample (float64)."""
    rng = np.random.default_rng(seed)
    k = _kernel(np.vstack([x, y]), s, kernel)
    n = len(x)
    observed = _mmd2_u(k, n)
    count = 0
    for _ in range(n_perm):
        perm = rng.permutation(len(k))
        count += _mmd2_u(k[np.ix_(perm, perm)], n) >= observed - 1e-12
    return observed, (1 + count) / (n_perm + 1)


def _samples(seed, n, m, d, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.normal(size=(m, d)) * scale + shift).astype(np.float32)
    return x, y


# ------------------------------------------------------------------ statistic


@pytest.mark.parametrize("kernel", ["multi_rbf", "rbf"])
@pytest.mark.parametrize(("n", "m"), [(30, 30), (25, 40)])
def test_statistic_and_bandwidth_match_the_formula(kernel, n, m):
    x, y = _samples(0, n, m, 6, shift=0.3)
    res = mmd_test(x, y, n_permutations=50, kernel=kernel, seed=1)
    s = _median_bandwidth(np.vstack([x, y]))
    assert res.bandwidth == pytest.approx(s, rel=1e-4)
    assert res.statistic == pytest.approx(
        _mmd2_u(_kernel(np.vstack([x, y]), s, kernel), n), rel=1e-4, abs=1e-6
    )
    assert res.bandwidths == pytest.approx(tuple(s * c for c in SCALES[kernel]), rel=1e-4)
    assert res.null_statistics.shape == (50,)


def test_fixed_bandwidth_is_used():
    x, y = _samples(1, 20, 20, 4)
    res = mmd_test(x, y, bandwidth=1.7, kernel="rbf", n_permutations=20, seed=0)
    assert res.bandwidth == pytest.approx(1.7)
    assert res.statistic == pytest.approx(
        _mmd2_u(_kernel(np.vstack([x, y]), 1.7, "rbf"), 20), rel=1e-4, abs=1e-6
    )


def test_statistic_orders_shifts():
    stats = [
        mmd_test(*_samples(2, 60, 60, 8, shift=s), n_permutations=10, seed=0).statistic
        for s in (0.0, 0.3, 0.6, 1.2)
    ]
    assert stats == sorted(stats)


# ------------------------------------------------------------------ p-value


@pytest.mark.parametrize(
    ("n", "m", "shift", "kernel"),
    [
        (40, 40, 0.0, "multi_rbf"),
        (40, 40, 0.25, "multi_rbf"),
        (40, 40, 0.35, "rbf"),
        (30, 50, 0.3, "multi_rbf"),
        (30, 50, 0.0, "rbf"),
    ],
)
def test_p_value_agrees_with_brute_force_permutation_test(n, m, shift, kernel):
    x, y = _samples(10 + n + m, n, m, 5, shift=shift)
    n_perm = 2000
    res = mmd_test(x, y, n_permutations=n_perm, kernel=kernel, seed=3)
    observed, p_brute = brute_force_test(x, y, res.bandwidth, n_perm, seed=4, kernel=kernel)
    assert res.statistic == pytest.approx(observed, rel=1e-4, abs=1e-6)
    p_bar = (res.p_value + p_brute) / 2
    monte_carlo_sd = np.sqrt(max(p_bar * (1 - p_bar), 0.01) * 2 / n_perm)
    assert abs(res.p_value - p_brute) <= 4 * monte_carlo_sd


def test_p_value_is_consistent_with_null_statistics():
    x, y = _samples(5, 50, 50, 8, shift=0.2)
    res = mmd_test(x, y, n_permutations=500, seed=0)
    from_null = (1 + np.sum(res.null_statistics >= res.statistic - 1e-9)) / 501
    assert abs(res.p_value - from_null) <= 2 / 501


def test_p_value_is_never_zero():
    x, y = _samples(6, 30, 30, 4, shift=5.0)
    res = mmd_test(x, y, n_permutations=10, seed=0)
    assert res.p_value == pytest.approx(1 / 11)
    assert res.reject(alpha=0.1)
    res = mmd_test(x, y[:20], n_permutations=10, seed=0)
    assert res.p_value == pytest.approx(1 / 11)


def test_identical_rows_give_zero_statistic_and_p_one():
    z = np.ones((20, 5), dtype=np.float32)
    res = mmd_test(z, z.copy(), n_permutations=50, seed=0)
    assert res.statistic == pytest.approx(0.0, abs=1e-6)
    assert res.p_value == 1.0


def test_quadratic_form_paths_agree_with_direct_sum():
    rng = np.random.default_rng(0)
    n, c = 12, 9
    pool = SwapPool(rng, 30, n, torch.device("cpu"))
    h_full = rng.normal(size=(c, n, n)).astype(np.float32)
    h_full = h_full + h_full.transpose(0, 2, 1)
    for k in range(c):
        np.fill_diagonal(h_full[k], 0.0)
    i, j = np.triu_indices(n, 1)
    h = torch.from_numpy(h_full[:, i, j].copy())
    signs = pool.signs.numpy()
    direct = np.einsum("bi,cij,bj->cb", signs, h_full, signs)
    assert np.allclose(quadratic_forms(pool, h, outer=True).numpy(), direct, rtol=1e-5, atol=1e-4)
    assert np.allclose(quadratic_forms(pool, h, outer=False).numpy(), direct, rtol=1e-5, atol=1e-4)
    assert (signs[0] == 1).all() and set(np.unique(signs[1:])) == {-1.0, 1.0}


# ------------------------------------------------------------------ inputs, seeds, devices


def test_same_seed_same_numbers_and_no_global_rng():
    x, y = _samples(7, 40, 40, 8, shift=0.1)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a, b = mmd_test(x, y, seed=11), mmd_test(x, y, seed=11)
    assert (a.statistic, a.p_value) == (b.statistic, b.p_value)
    assert np.array_equal(a.null_statistics, b.null_statistics)
    assert not np.array_equal(a.null_statistics, mmd_test(x, y, seed=12).null_statistics)
    mmd_test(x, y, seed=None)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_accepts_tensors_float64_and_higher_rank():
    rng = np.random.default_rng(8)
    x4 = rng.normal(size=(20, 2, 3, 4))
    y4 = rng.normal(size=(20, 2, 3, 4)) + 0.2
    ref = mmd_test(
        x4.reshape(20, -1).astype(np.float32), y4.reshape(20, -1).astype(np.float32), seed=0
    )
    for x, y in [(x4, y4), (torch.from_numpy(x4), torch.from_numpy(y4).float())]:
        res = mmd_test(x, y, seed=0)
        assert res.statistic == pytest.approx(ref.statistic, rel=1e-5)
        assert res.p_value == ref.p_value


def test_one_dimensional_input_is_one_feature():
    rng = np.random.default_rng(9)
    res = mmd_test(rng.normal(size=50), rng.normal(size=50) + 2.0, n_permutations=99, seed=0)
    assert res.p_value == pytest.approx(0.01)


def test_standardize_makes_the_test_scale_free():
    x, y = _samples(13, 40, 40, 6, shift=0.4)
    scale = np.array([1e-3, 1.0, 1e3, 5.0, 0.1, 20.0], dtype=np.float32)
    a = mmd_test(x, y, standardize=True, seed=0)
    b = mmd_test(x * scale, y * scale, standardize=True, seed=0)
    assert a.statistic == pytest.approx(b.statistic, rel=1e-3)
    assert a.p_value == b.p_value


def test_result_is_frozen():
    res = mmd_test(*_samples(14, 10, 10, 3), n_permutations=5, seed=0)
    assert isinstance(res, MMDTestResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.p_value = 0.0  # type: ignore[misc]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    x, y = _samples(15, 60, 60, 32, shift=0.2)
    cpu = mmd_test(x, y, seed=0)
    gpu = mmd_test(x, y, seed=0, device="cuda")
    assert gpu.statistic == pytest.approx(cpu.statistic, rel=1e-3, abs=1e-6)
    assert abs(gpu.p_value - cpu.p_value) <= 0.01
