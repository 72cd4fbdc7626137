"""Batched paired-swap permutation tests: the hot path of every MMD test in LADIS.

Two samples of equal size ``n`` are paired as ``(x_i, y_i)``. With the kernel blocks
``Kxx, Kyy, Kxy`` of the pooled sample let ``H = Kxx + Kyy - Kxy - Kxy^T`` with a zero
diagonal. Swapping the members of the pairs where ``e_i = -1`` (``e`` in {-1, +1}^n) makes
the unbiased MMD^2 an increasing affine function of ``T(e) = e^T H e`` (``e = 1``: the
observed labelling), so a test needs only the B + 1 quadratic forms ``T(e_b)``:

* few tests, or n too large for Omega: ``rowsum((E @ H) * E)`` with the pool ``E`` of
  shape (B + 1, n), all tests' ``H`` side by side in one GEMM;
* many tests (repetitions x layers): ``T = 2 h @ Omega`` where ``h`` holds the strict
  upper triangle of each ``H`` and ``Omega[(i, j), b] = e_b,i * e_b,j`` (i < j) -- one
  GEMM for all tests, half the flops.

The swaps form a group of permutations under which the null distribution (both samples
i.i.d. from one law) is invariant, so with B i.i.d. uniform draws from it
``p = (1 + #{b : T_b >= T_obs}) / (B + 1)`` is an exact permutation p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ladis_core.progress import ProgressCallback, report
from ladis_core.stats._kernels import (
    cross_sq_distances,
    kernel_from_sq_distances,
    median_sq_distance,
    self_sq_distances,
)
from ladis_core.stats._prepare import HeldOutScaler

_CHUNK_BYTES = 192 * 2**20  # working memory per chunk of repetitions (CPU)
_GRAM_MAX_BYTES = 256 * 2**20  # largest all-rows distance matrix kept in memory
_OUTER_MAX_BYTES = 64 * 2**20  # largest Omega pool
_OUTER_MIN_TESTS = 8  # below this many tests, E @ H is cheaper than building Omega
_REL_TOL = 1e-6  # statistics this close (relative) to the observed one count as ties


class SwapPool:
    """Row 0 all ones (the observed labelling), then B uniform random swap vectors.

    Drawn from raw random bytes: far cheaper than sorting random keys.
    """

    def __init__(self, rng: np.random.Generator, n_permutations: int, n: int, device: torch.device):
        n_bits = n_permutations * n
        raw = np.frombuffer(rng.bytes((n_bits + 7) // 8), dtype=np.uint8)
        self.bits = np.zeros((n_permutations + 1, n), dtype=np.uint8)
        self.bits[1:] = np.unpackbits(raw)[:n_bits].reshape(n_permutations, n)
        self.n, self.size, self.device = n, n_permutations + 1, device
        self._signs: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None

    @property
    def signs(self) -> torch.Tensor:
        """(B + 1, n) float32 in {-1, +1}."""
        if self._signs is None:
            self._signs = torch.from_numpy(1.0 - 2.0 * self.bits.astype(np.float32)).to(self.device)
        return self._signs

    @property
    def outer(self) -> torch.Tensor:
        """(n(n-1)/2, B + 1) float32: row (i, j), i < j, holds ``e_b,i * e_b,j`` for every b."""
        if self._outer is None:
            signs_t = self.signs.T.contiguous()  # (n, B + 1)
            out = signs_t.new_empty(self.n * (self.n - 1) // 2, self.size)
            start = 0
            for i in range(self.n - 1):  # rows (i, i+1..n-1), contiguous: no gather
                stop = start + self.n - 1 - i
                torch.mul(signs_t[i + 1 :], signs_t[i], out=out[start:stop])
                start = stop
            self._outer = out
        return self._outer

    def use_outer(self, n_tests: int) -> bool:
        nt = self.n * (self.n - 1) // 2
        return n_tests >= _OUTER_MIN_TESTS and 4 * self.size * nt <= _OUTER_MAX_BYTES


def swap_pool(
    rng: np.random.Generator, n_permutations: int, n: int, device: torch.device
) -> SwapPool:
    return SwapPool(rng, n_permutations, n, device)


def quadratic_forms(pool: SwapPool, h: torch.Tensor, outer: bool) -> torch.Tensor:
    """``T[c, b] = e_b^T H_c e_b`` from upper triangles ``h`` (c, n(n-1)/2): (c, B + 1)."""
    if outer:
        return 2.0 * (h @ pool.outer)
    c, n = h.shape[0], pool.n
    i, j = torch.triu_indices(n, n, 1, device=h.device)
    full = h.new_zeros(n, c, n)  # full[a, c, b] = H_c[a, b]
    full[i, :, j] = h.T
    full[j, :, i] = h.T
    prod = (pool.signs @ full.view(n, c * n)).view(pool.size, c, n)
    return torch.einsum("bcn,bn->cb", prod, pool.signs)


def permutation_p_values(stats: torch.Tensor, tol: torch.Tensor) -> torch.Tensor:
    """(1 + #{b >= 1 : stats[:, b] >= stats[:, 0] - tol}) / (B + 1) per row of (c, B + 1)."""
    observed = (stats[:, :1] - tol.reshape(-1, 1)).to(stats.dtype)
    count = (stats[:, 1:] >= observed).sum(dim=1)
    return (1.0 + count.to(torch.float64)) / stats.shape[1]


@dataclass(frozen=True)
class Scaling:
    """Held-out standardisation: data rows [0, n_reference) are the reference; with
    ``y_is_reference`` (baseline) the y rows are reference rows too."""

    n_reference: int
    y_is_reference: bool = False


@dataclass
class LayerOutcome:
    """Per-repetition results of one layer (arrays of shape (R,))."""

    statistics: np.ndarray  # unbiased MMD^2
    p_values: np.ndarray
    bandwidths: np.ndarray  # base bandwidth s (median heuristic or fixed)


@dataclass
class CombinedOutcome:
    """Max-statistic combination over layers (arrays of shape (R,))."""

    statistics: np.ndarray  # max over layers of T / sd(T)
    p_values: np.ndarray


class _Rows:
    """The rows of every test, shared by all layers (rows correspond across layers).

    Pair order per test: the strict upper triangle of x-x, that of y-y, then all x-y
    (row-major). When few distinct rows are involved (``gram``), each layer computes all
    their distances once and the tests gather from them with flat indices built here once
    per chunk; otherwise each test's rows are gathered and multiplied.
    """

    def __init__(
        self, x_idx: np.ndarray, y_idx: np.ndarray, device: torch.device, allow_gram: bool
    ):
        repeats, n = x_idx.shape
        used = np.unique(np.concatenate([x_idx.ravel(), y_idx.ravel()]))
        n_used = len(used)
        self.gram = (
            allow_gram
            and n_used * n_used <= 3 * repeats * n * n
            and 4 * n_used**2 <= _GRAM_MAX_BYTES
        )
        if self.gram:
            self.used = torch.from_numpy(used).to(device)
            x_idx, y_idx = np.searchsorted(used, x_idx), np.searchsorted(used, y_idx)
        self.n_used, self.device = n_used, device
        self.x_idx, self.y_idx = x_idx, y_idx
        self.iu = np.triu_indices(n, 1)

    def flat_index(self, rows: slice) -> torch.Tensor:
        """Flat indices into the (n_used, n_used) distance matrix, shape (c * n_pairs,)."""
        xi, yi, u = self.x_idx[rows], self.y_idx[rows], self.n_used
        i, j = self.iu
        xy = (xi[:, :, None] * u + yi[:, None, :]).reshape(len(xi), -1)
        flat = np.concatenate([xi[:, i] * u + xi[:, j], yi[:, i] * u + yi[:, j], xy], axis=1)
        return torch.from_numpy(flat.ravel()).to(self.device)

    def row_index(self, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        to = self.device
        return torch.from_numpy(self.x_idx[rows]).to(to), torch.from_numpy(self.y_idx[rows]).to(to)


class _Layer:
    """One layer's rows, ready to produce the squared distances of the tests' pooled pairs."""

    def __init__(self, data: torch.Tensor, rows: _Rows, scaling: Scaling | None) -> None:
        self.rows, self.data = rows, data
        self.scaler = None if scaling is None else HeldOutScaler(data, scaling.n_reference)
        self.y_is_reference = scaling is not None and scaling.y_is_reference
        if rows.gram:
            self.dist = self_sq_distances(data[rows.used]).view(-1)

    def pair_distances(self, rows: slice, flat: torch.Tensor | None) -> torch.Tensor:
        c = rows.stop - rows.start
        if flat is not None:
            return torch.index_select(self.dist, 0, flat).view(c, -1)
        xi, yi = self.rows.row_index(rows)
        x, y = self.data[xi], self.data[yi]
        if self.scaler is not None:
            tested_ref = torch.cat([x, y], dim=1) if self.y_is_reference else x
            inv = self.scaler.scales(tested_ref, torch.cat([x, y], dim=1))
            x, y = x * inv, y * inv
        i, j = (torch.from_numpy(k).to(x.device) for k in self.rows.iu)
        dxy = cross_sq_distances(x, y).reshape(c, -1)
        return torch.cat([self_sq_distances(x)[:, i, j], self_sq_distances(y)[:, i, j], dxy], 1)


def chunk_size(n: int, n_pool: int, d_max: int, n_layers: int, device: torch.device) -> int:
    per_test = n_layers * (48 * n * n + 8 * n_pool * n + 8 * n * d_max)
    budget = _CHUNK_BYTES if device.type == "cpu" else 8 * _CHUNK_BYTES
    return max(1, budget // per_test)


def run_paired_tests(
    layers: Sequence[torch.Tensor],
    x_idx: np.ndarray,
    y_idx: np.ndarray,
    pool: SwapPool,
    *,
    kernel: str,
    bandwidth: float | None,
    combine: bool = False,
    scaling: Scaling | None = None,
    progress: ProgressCallback | None = None,
    stage: str = "MMD tests",
) -> tuple[list[LayerOutcome], CombinedOutcome | None]:
    """Run R paired-swap tests per layer; ``x_idx``/``y_idx`` (R, n) index every layer's rows.

    With ``combine``, also the max-statistic combination: the same rows and swaps for every
    layer, each layer's ``T`` divided by the exact standard deviation of its swap
    distribution, ``sqrt(2 ||H||_F^2)``, and the maximum over layers tested like ``T``.
    ``scaling`` turns on per-test standardisation fitted on untested reference rows.
    """
    repeats, n = x_idx.shape
    shared = _Rows(x_idx, y_idx, pool.device, allow_gram=scaling is None)
    prepared = [_Layer(data, shared, scaling) for data in layers]
    outer = pool.use_outer(repeats * len(layers))
    d_max = max(d.shape[1] for d in layers)
    step = chunk_size(n, pool.size, d_max, len(layers), pool.device)
    parts: list[list[dict[str, torch.Tensor]]] = [[] for _ in layers]
    combined: list[tuple[torch.Tensor, torch.Tensor]] = []
    report(progress, stage, 0, repeats)
    for start in range(0, repeats, step):
        rows = slice(start, min(start + step, repeats))
        flat = shared.flat_index(rows) if shared.gram else None
        pieces = [
            _kernel_part(layer.pair_distances(rows, flat), n, kernel, bandwidth)
            for layer in prepared
        ]
        h_all = torch.cat([piece.pop("h") for piece in pieces])
        forms_all = quadratic_forms(pool, h_all, outer).split(rows.stop - rows.start)
        z_layers = []
        for piece, forms, store in zip(pieces, forms_all, parts, strict=True):
            h_abs, h_sq = piece.pop("h_abs"), piece.pop("h_sq")
            piece["p_values"] = permutation_p_values(forms, _REL_TOL * h_abs)
            store.append(piece)
            if combine:
                scale = h_sq.sqrt().mul_(2.0)
                z_layers.append(
                    forms / torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]
                )
        if combine:
            zmax = torch.stack(z_layers).amax(dim=0)
            tol = _REL_TOL * zmax[:, 0].abs().clamp_min(1.0)
            combined.append((zmax[:, 0], permutation_p_values(zmax, tol)))
        report(progress, stage, rows.stop, repeats)
    outcomes = [
        LayerOutcome(**{k: _cat([p[k] for p in store]) for k in store[0]}) for store in parts
    ]
    comb = None
    if combine:
        comb = CombinedOutcome(_cat([c[0] for c in combined]), _cat([c[1] for c in combined]))
    return outcomes, comb


def _kernel_part(
    pairs: torch.Tensor, n: int, kernel: str, bandwidth: float | None
) -> dict[str, torch.Tensor]:
    """Kernel values of the pooled pairs (c, P) -> statistic, ``h`` and helper sums."""
    c, nt = pairs.shape[0], n * (n - 1) // 2
    if bandwidth is None:
        sigma2 = median_sq_distance(pairs)
    else:
        sigma2 = torch.full((c,), bandwidth**2, dtype=pairs.dtype, device=pairs.device)
    k = kernel_from_sq_distances(pairs, sigma2, kernel)
    kxx, kyy, kxy = k[:, :nt], k[:, nt : 2 * nt], k[:, 2 * nt :].view(c, n, n)
    sxx = 2.0 * kxx.sum(dim=1, dtype=torch.float64)
    syy = 2.0 * kyy.sum(dim=1, dtype=torch.float64)
    sxy = kxy.sum(dim=(1, 2), dtype=torch.float64)
    i, j = torch.triu_indices(n, n, 1, device=k.device)
    h = kxx + kyy - kxy[:, i, j] - kxy[:, j, i]
    return {
        "statistics": (sxx + syy) / (n * (n - 1)) - 2.0 * sxy / (n * n),
        "bandwidths": sigma2.sqrt(),
        "h": h,
        "h_abs": 2.0 * h.abs().sum(dim=1),
        "h_sq": (h * h).sum(dim=1),
    }


def _cat(parts: list[torch.Tensor]) -> np.ndarray:
    return torch.cat(parts).double().cpu().numpy()
