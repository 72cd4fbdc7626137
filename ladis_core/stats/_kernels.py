"""Gaussian RBF kernels, stable squared distances and the median heuristic.

The kernel of bandwidth ``s`` is ``k_s(a, b) = exp(-||a - b||^2 / (2 s^2))``.
``"multi_rbf"`` (the default) sums five of them around the median-heuristic bandwidth,
``k(a, b) = sum_{j=-2..2} k_{s * 2^j}(a, b)``; ``"rbf"`` uses ``s`` alone. The median
heuristic sets ``s`` to the (lower) median of the pairwise Euclidean distances of the pooled
sample (Gretton et al., JMLR 2012, section 8).

Everything here works on batches: a leading dimension holds independent tests.
"""

from __future__ import annotations

import numpy as np
import torch

#: bandwidth multipliers 2^j of each kernel
SCALES = {"multi_rbf": (0.25, 0.5, 1.0, 2.0, 4.0), "rbf": (1.0,)}
_TINY = float(torch.finfo(torch.float32).tiny)
_BLOCK_ROWS = 384  # row block of the symmetric distance matrix


def self_sq_distances(a: torch.Tensor) -> torch.Tensor:
    """Squared distances within ``a`` of shape (..., n, d): (..., n, n), exact zero diagonal.

    ``|a_i|^2 + |a_j|^2 - 2 a_i.a_j`` fused into one (batched) GEMM, clamped at 0 (round-off
    can make tiny distances negative); callers centre the data first, which keeps the
    cancellation small. A large 2-D input is done in blocks of rows, upper blocks only
    (the matrix is symmetric): ~40 % fewer flops and no full-size temporaries.
    """
    if a.ndim == 2 and a.shape[0] > 2 * _BLOCK_ROWS:
        return _blocked_self_sq_distances(a)
    dist = cross_sq_distances(a, a)
    dist.diagonal(dim1=-2, dim2=-1).zero_()
    return dist


def cross_sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distances between rows of ``a`` (..., n, d) and ``b`` (..., m, d): (..., n, m)."""
    sa, sb = (a * a).sum(-1), (b * b).sum(-1)
    if a.ndim == 2:
        dist = torch.addmm(sb.unsqueeze(0), a, b.T, alpha=-2.0)
    else:
        dist = torch.baddbmm(sb.unsqueeze(-2), a, b.transpose(-1, -2), alpha=-2.0)
    return dist.add_(sa.unsqueeze(-1)).clamp_min_(0.0)


def _blocked_self_sq_distances(a: torch.Tensor) -> torch.Tensor:
    n = a.shape[0]
    sq = (a * a).sum(-1)
    out = a.new_empty(n, n)
    edges = list(range(0, n, _BLOCK_ROWS)) + [n]
    for bi in range(len(edges) - 1):
        rows = slice(edges[bi], edges[bi + 1])
        for bj in range(bi, len(edges) - 1):
            cols = slice(edges[bj], edges[bj + 1])
            block = torch.addmm(sq[cols].unsqueeze(0), a[rows], a[cols].T, alpha=-2.0)
            block.add_(sq[rows].unsqueeze(1)).clamp_min_(0.0)
            out[rows, cols] = block
            if bj != bi:
                out[cols, rows] = block.T
    out.diagonal().zero_()
    return out


def median_sq_distance(pairs: torch.Tensor) -> torch.Tensor:
    """Lower median of squared distances ``pairs`` of shape (c, n_pairs) -> (c,).

    Degenerate samples fall back to the mean squared distance, then to 1 (all rows equal:
    every kernel value is then 1 and the test returns MMD^2 = 0, p = 1). On CPU NumPy's
    selection (``np.partition``) is ~10x faster than ``torch.median``.
    """
    k = (pairs.shape[-1] - 1) // 2
    if pairs.device.type == "cpu":
        med = torch.from_numpy(np.partition(pairs.numpy(), k, axis=-1)[..., k].copy())
    else:
        med = pairs.kthvalue(k + 1, dim=-1).values
    mean = pairs.mean(dim=-1)
    med = torch.where(med > _TINY, med, mean)
    return torch.where(med > _TINY, med, torch.ones_like(med))


def kernel_from_sq_distances(dist: torch.Tensor, sigma2: torch.Tensor, kernel: str) -> torch.Tensor:
    """Kernel values from squared distances ``dist`` of shape (c, ...); ``sigma2`` is (c,).

    ``multi_rbf`` needs one ``exp``: with ``e = k_{4s}`` (the widest kernel), halving the
    bandwidth raises the kernel to the 4th power, so ``k_{2s} = e^4``, ``k_s = e^16``,
    ... (two in-place squarings each; relative error < 3e-5, 3x faster than five ``exp``).
    """
    shape = (-1,) + (1,) * (dist.ndim - 1)
    widest = max(SCALES[kernel])
    out = torch.mul(dist, (-0.5 / (sigma2 * widest * widest)).reshape(shape)).exp_()
    if len(SCALES[kernel]) > 1:
        power = out.clone()
        for _ in SCALES[kernel][1:]:
            power.mul_(power)  # squared twice: to the 4th power
            power.mul_(power)
            out.add_(power)
    return out
