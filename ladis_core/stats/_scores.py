"""Per-input suspicion scores: the MMD witness function, calibrated on held-out references.

The reference is split at random (from ``seed``) into a *fit* part F and a *calibration*
part C. The empirical MMD witness function of the inference window I against F is

    f(z) = mean_{y in I} k(z, y) - mean_{r in F} k(z, r)

(positive where the window has more mass than natural data). Each inference row is scored
leaving itself out of the first mean, and so is every calibration row (which is in neither
I nor F), so under "no attack" both are draws of the same quantity. The calibrated p-value

    p_j = (1 + #{c in C : f(c) >= f(y_j)}) / (|C| + 1)

is then (conformally) uniform for natural inputs, whatever the window, so scores are
comparable across jobs. The score is ``-log10(p)``: 0 for typical inputs, at most
``log10(|C| + 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ladis_core.errors import check
from ladis_core.stats._kernels import (
    SCALES,
    cross_sq_distances,
    kernel_from_sq_distances,
    median_sq_distance,
)
from ladis_core.stats._prepare import fit_transform
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

_BLOCK = 4 * 2**20  # kernel entries per block of rows
_MEDIAN_ROWS = 1000  # rows used by the median heuristic


@dataclass(frozen=True, eq=False)
class SampleScoreResult:
    """Per-input scores of one inference window.

    Attributes:
        scores: ndarray of shape (m,), ``-log10(p_values)``; higher = more suspicious.
        p_values: ndarray of shape (m,), calibrated empirical p-values in [1/(|C|+1), 1].
        witness: ndarray of shape (m,), raw witness values f(y_j) (break ties in ranking).
        calibration_witness: ndarray of shape (|C|,), f on the calibration rows.
        bandwidth: base kernel bandwidth; kernel: kernel name.
        n_fit, n_calibration: sizes of the reference fit and calibration parts.
    """

    scores: np.ndarray
    p_values: np.ndarray
    witness: np.ndarray
    calibration_witness: np.ndarray
    bandwidth: float
    kernel: str
    n_fit: int
    n_calibration: int

    def ranking(self) -> np.ndarray:
        """Indices of the inference rows, most suspicious first (p-value, then witness)."""
        return np.lexsort((-self.witness, self.p_values))

    def top(self, k: int = 100) -> np.ndarray:
        """Indices of the ``k`` most suspicious inference rows."""
        return self.ranking()[:k]


def sample_scores(
    reference: Any,
    inference: Any,
    *,
    seed: int | None = None,
    kernel: str = "multi_rbf",
    n_calibration: int | None = None,
    bandwidth: str | float = "median",
    standardize: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Suspicion score of every inference row: ndarray of shape (len(inference),).

    ``-log10`` of the witness p-value calibrated on held-out reference rows (see
    :func:`sample_scores_with_pvalues`, which also returns the p-values); higher is more
    suspicious and the scale is the same in every call.
    """
    return sample_scores_with_pvalues(
        reference,
        inference,
        seed=seed,
        kernel=kernel,
        n_calibration=n_calibration,
        bandwidth=bandwidth,
        standardize=standardize,
        device=device,
    ).scores


def sample_scores_with_pvalues(
    reference: Any,
    inference: Any,
    *,
    seed: int | None = None,
    kernel: str = "multi_rbf",
    n_calibration: int | None = None,
    bandwidth: str | float = "median",
    standardize: bool = False,
    device: str | torch.device | None = None,
    max_fit: int = 2000,
) -> SampleScoreResult:
    """Witness-function scores with calibrated p-values (module docstring has the maths).

    Args:
        reference: ndarray/tensor (N_ref, ...), natural representations (N_ref >= 2).
        inference: ndarray/tensor (m, ...), the window (m >= 2).
        seed: seed of the fit/calibration split (same seed, same scores).
        kernel, bandwidth: as in :func:`mmd_test`; the median heuristic uses up to 1,000
            rows of fit + inference.
        n_calibration: held-out reference rows; default ``min(N_ref // 2, 1000)``.
        standardize: features scaled with statistics of the fit part only.
        max_fit: at most this many reference rows (at random) form the fit part.
    """
    ref = as_matrix(reference, "reference", finite=False)
    inf = as_matrix(inference, "inference", finite=False)
    check_same_features(ref, "reference", inf, "inference")
    n_ref, m = ref.shape[0], inf.shape[0]
    check(n_ref >= 2, f"reference needs at least 2 rows (fit and calibration); got {n_ref}")
    check(m >= 2, f"inference needs at least 2 rows for the witness function; got {m}")
    kernel = check_kernel(kernel)
    fixed_bw = check_bandwidth(bandwidth)
    n_cal = (
        min(n_ref // 2, 1000)
        if n_calibration is None
        else check_int(n_calibration, "n_calibration", 1)
    )
    check(
        n_cal <= n_ref - 1,
        f"n_calibration={n_cal} leaves no reference rows to fit on; reference has {n_ref} rows",
    )
    max_fit = check_int(max_fit, "max_fit", 1)
    rng = make_rng(seed)
    dev = resolve_device(device, ref, inf)
    n_fit = min(max_fit, n_ref - n_cal)
    work = 2.0 * (m + n_cal) * (m + n_fit) * ref.shape[1]
    with threads_for(work, dev):
        ref, inf = check_finite(ref, "reference"), check_finite(inf, "inference")
        perm = torch.from_numpy(rng.permutation(n_ref))
        cal_rows, fit_rows = perm[:n_cal], perm[n_cal : n_cal + n_fit]
        fit, cal, inf = fit_transform(
            ref[fit_rows].to(dev), [ref[cal_rows].to(dev), inf.to(dev)], standardize=standardize
        )
        sigma2 = _bandwidth(fit, inf, fixed_bw, rng)
        self_k = float(len(SCALES[kernel]))  # k(z, z), left out of the inference mean
        w_inf = (_row_sums(inf, inf, sigma2, kernel) - self_k) / (m - 1)
        w_inf -= _row_sums(inf, fit, sigma2, kernel) / n_fit
        w_cal = _row_sums(cal, inf, sigma2, kernel) / m
        w_cal -= _row_sums(cal, fit, sigma2, kernel) / n_fit
    w_inf_np, w_cal_np = w_inf.cpu().numpy(), w_cal.cpu().numpy()
    at_least = n_cal - np.searchsorted(np.sort(w_cal_np), w_inf_np, side="left")
    p_values = (1.0 + at_least) / (n_cal + 1.0)
    return SampleScoreResult(
        scores=-np.log10(p_values),
        p_values=p_values,
        witness=w_inf_np,
        calibration_witness=w_cal_np,
        bandwidth=float(sigma2.sqrt()[0]),
        kernel=kernel,
        n_fit=n_fit,
        n_calibration=n_cal,
    )


def _bandwidth(
    fit: torch.Tensor, inf: torch.Tensor, fixed_bw: float | None, rng: np.random.Generator
) -> torch.Tensor:
    """Squared base bandwidth, (1,): fixed, or the median heuristic on <= 1,000 pooled rows."""
    if fixed_bw is not None:
        return torch.full((1,), fixed_bw**2, device=fit.device)
    pooled = torch.cat([fit, inf])
    if pooled.shape[0] > _MEDIAN_ROWS:
        keep = rng.choice(pooled.shape[0], _MEDIAN_ROWS, replace=False)
        pooled = pooled[torch.from_numpy(keep).to(fit.device)]
    dist = cross_sq_distances(pooled, pooled)
    i, j = torch.triu_indices(len(pooled), len(pooled), 1, device=fit.device)
    return median_sq_distance(dist[i, j][None])


def _row_sums(a: torch.Tensor, b: torch.Tensor, sigma2: torch.Tensor, kernel: str) -> torch.Tensor:
    """``sum_j k(a_i, b_j)`` for every row of ``a`` (float64), in blocks of rows."""
    step = max(1, _BLOCK // b.shape[0])
    out = []
    for start in range(0, a.shape[0], step):
        dist = cross_sq_distances(a[start : start + step], b)
        out.append(
            kernel_from_sq_distances(dist[None], sigma2, kernel)[0].sum(dim=1, dtype=torch.float64)
        )
    return torch.cat(out)
