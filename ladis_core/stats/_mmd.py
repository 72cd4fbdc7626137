"""The kernel two-sample test: unbiased MMD^2 with a permutation p-value.

Gretton, Borgwardt, Rasch, Schoelkopf and Smola, "A Kernel Two-Sample Test", JMLR 13
(2012), eq. (3)::

    MMD^2_u = 1/(n(n-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
              - 2/(nm) sum_{i, j} k(x_i, y_j)

p-value: ``(1 + #{b : MMD^2_b >= MMD^2_obs}) / (B + 1)`` over B random relabellings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ladis_core.errors import check
from ladis_core.stats._engine import _REL_TOL, permutation_p_values
from ladis_core.stats._kernels import (
    SCALES,
    kernel_from_sq_distances,
    median_sq_distance,
    self_sq_distances,
)
from ladis_core.stats._prepare import center, fit_transform
from ladis_core.stats._threads import threads_for
from ladis_core.stats._validation import (
    as_matrix,
    check_bandwidth,
    check_finite,
    check_int,
    check_kernel,
    check_same_features,
    make_rng,
    resolve_device,
)


@dataclass(frozen=True, eq=False)
class MMDTestResult:
    """Outcome of :func:`mmd_test`.

    Attributes:
        statistic: unbiased MMD^2 (can be slightly negative when the samples agree).
        p_value: permutation p-value in [1/(B+1), 1].
        bandwidth: base bandwidth ``s`` (median heuristic or the given float).
        n_permutations: B.
        kernel: ``"multi_rbf"`` or ``"rbf"``.
        n_x, n_y: sample sizes.
        null_statistics: ndarray of shape (B,), MMD^2 of the permuted labellings.
    """

    statistic: float
    p_value: float
    bandwidth: float
    n_permutations: int
    kernel: str
    n_x: int
    n_y: int
    null_statistics: np.ndarray

    @property
    def bandwidths(self) -> tuple[float, ...]:
        """Every bandwidth in the kernel (``s * 2^j``, j = -2..2 for ``multi_rbf``)."""
        return tuple(self.bandwidth * s for s in SCALES[self.kernel])

    def reject(self, alpha: float = 0.05) -> bool:
        """True when the test rejects "same distribution" at level ``alpha``."""
        return self.p_value < alpha


def mmd_test(
    x: Any,
    y: Any,
    *,
    n_permutations: int = 1000,
    kernel: str = "multi_rbf",
    bandwidth: str | float = "median",
    seed: int | None = None,
    device: str | torch.device | None = None,
    standardize: bool = False,
) -> MMDTestResult:
    """Kernel MMD two-sample permutation test of H0: ``x`` and ``y`` share one distribution.

    Args:
        x: ndarray or tensor of shape (n, d) (the reference side); higher rank is flattened
            per row, 1-D is read as (n, 1).
        y: ndarray or tensor of shape (m, d).
        n_permutations: B, the number of random permutations (>= 1).
        kernel: ``"multi_rbf"`` (sum of Gaussian RBFs with bandwidths ``s * 2^j``,
            j = -2..2) or ``"rbf"`` (bandwidth ``s``).
        bandwidth: ``"median"`` (``s`` = median pairwise distance of the pooled sample) or
            a positive float.
        seed: seed of the permutations (same seed, same numbers); None draws fresh entropy.
        device: ``"cpu"``, ``"cuda"`` ...; default: the inputs' device.
        standardize: scale every feature by the mean/std of the pooled sample. (Fitting on
            ``x`` alone would make ``x`` look more typical than ``y`` and inflate false
            positives; the pooled fit is relabelling-invariant, so the test stays exact.
            The detection-rate functions fit on held-out reference rows instead.)

    The B permutations are uniform random relabellings of the pooled sample (the classical
    permutation test): ``p = (1 + #{b : MMD^2_b >= MMD^2_obs}) / (B + 1)``, never 0. All B
    statistics come from one product ``S @ K`` with the +-1 label vectors ``S``.

    Raises:
        InputError: empty input, fewer than 2 rows on a side, mismatched features,
            NaN/inf, or a bad option.
    """
    xt, yt = as_matrix(x, "x", finite=False), as_matrix(y, "y", finite=False)
    check_same_features(xt, "x", yt, "y")
    n, m = xt.shape[0], yt.shape[0]
    check(n >= 2, f"x needs at least 2 rows for the unbiased MMD^2; got {n}")
    check(m >= 2, f"y needs at least 2 rows for the unbiased MMD^2; got {m}")
    n_perm = check_int(n_permutations, "n_permutations", 1)
    kernel = check_kernel(kernel)
    fixed_bw = check_bandwidth(bandwidth)
    rng = make_rng(seed)
    dev = resolve_device(device, xt, yt)
    work = 2.0 * (n + m) ** 2 * (xt.shape[1] + n_perm + 1)
    with threads_for(work, dev):
        xt, yt = check_finite(xt, "x").to(dev), check_finite(yt, "y").to(dev)
        if standardize:
            _, xt, yt = fit_transform(torch.cat([xt, yt]), [xt, yt], standardize=True)
        else:
            xt, yt = center(xt, [yt])
        stat, p_value, sigma, null = _relabel_test(xt, yt, rng, n_perm, kernel, fixed_bw)
    return MMDTestResult(
        statistic=stat,
        p_value=p_value,
        bandwidth=sigma,
        n_permutations=n_perm,
        kernel=kernel,
        n_x=n,
        n_y=m,
        null_statistics=null,
    )


def _relabel_test(
    x: torch.Tensor,
    y: torch.Tensor,
    rng: np.random.Generator,
    n_perm: int,
    kernel: str,
    fixed_bw: float | None,
) -> tuple[float, float, float, np.ndarray]:
    """B uniform relabellings as +-1 vectors s; with K0 = K minus its diagonal,
    r = K0 1 and S = 1^T K0 1, the block sums are Txx = (S + 2 s.r + s^T K0 s) / 4,
    Tyy = (S - 2 s.r + s^T K0 s) / 4 and Txy = (S - s^T K0 s) / 4."""
    n, m = x.shape[0], y.shape[0]
    dist = self_sq_distances(torch.cat([x, y]))
    if fixed_bw is None:
        iu = torch.triu_indices(n + m, n + m, 1, device=dist.device)
        sigma2 = median_sq_distance(dist[iu[0], iu[1]][None])
    else:
        sigma2 = torch.full((1,), fixed_bw**2, device=dist.device)
    k0 = kernel_from_sq_distances(dist[None], sigma2, kernel)[0]
    k0.fill_diagonal_(0.0)
    signs = _relabel_pool(rng, n_perm, n, m, dist.device)
    row = k0.sum(dim=1)
    total = row.sum(dtype=torch.float64)
    quad = ((signs @ k0) * signs).sum(dim=1).double()
    lin = (signs @ row).double()
    txx, tyy, txy = (total + 2 * lin + quad) / 4, (total - 2 * lin + quad) / 4, (total - quad) / 4
    mmd2 = txx / (n * (n - 1)) + tyy / (m * (m - 1)) - 2 * txy / (n * m)
    tol = _REL_TOL * total / min(n, m) ** 2
    p_value = float(permutation_p_values(mmd2[None], tol[None])[0])
    sxx = k0[:n, :n].sum(dtype=torch.float64)
    syy = k0[n:, n:].sum(dtype=torch.float64)
    sxy = k0[:n, n:].sum(dtype=torch.float64)
    stat = float(sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m))
    return stat, p_value, float(sigma2.sqrt()[0]), mmd2[1:].cpu().numpy()


def _relabel_pool(
    rng: np.random.Generator, n_perm: int, n: int, m: int, device: torch.device
) -> torch.Tensor:
    """Row 0: the observed labels (+1 for x, -1 for y); then B uniform random relabellings.

    Each row marks the n smallest of N = n + m random 32-bit keys (NumPy sorts uint32
    with SIMD: 0.1 ms for 1,000 x 200, 20x faster than argsort of float64 keys). A row
    whose n-th and (n+1)-th keys tie (probability ~N / 2^32) is redrawn by
    ``rng.permutation``, so every row is exactly uniform.
    """
    big_n = n + m
    keys = rng.integers(0, 2**32, size=(n_perm, big_n), dtype=np.uint32)
    ordered = np.sort(keys, axis=1)
    pool = np.empty((n_perm + 1, big_n), dtype=np.float32)
    pool[0, :n], pool[0, n:] = 1.0, -1.0
    rows = pool[1:]
    np.copyto(rows, keys > ordered[:, n - 1 : n])  # 1.0 marks y
    rows *= -2.0
    rows += 1.0
    for tie in np.flatnonzero(ordered[:, n - 1] == ordered[:, n]):
        rows[tie] = -1.0
        rows[tie, rng.permutation(big_n)[:n]] = 1.0
    return torch.from_numpy(pool).to(device)
