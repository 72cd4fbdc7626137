"""Kernel features of the window test: one Nystroem feature map per layer and kernel.

For a kernel ``k`` and ``L`` landmark rows ``u_1..u_L`` drawn at random from the pooled
rows, the Nystroem map (Williams and Seeger, NIPS 2000)

    phi(z) = Lambda_q^{-1/2} U_q^T [k(u_1, z), ..., k(u_L, z)]

(``U_q Lambda_q U_q^T`` the top-q eigenpairs of the landmark kernel matrix) gives
``phi(a).phi(b)``, the kernel projected on the landmarks' span: exact when every row is a
landmark, and otherwise a low-rank approximation. A squared MMD between weighted rows is
then ``||sum_i w_i phi(z_i)||^2``, a sum over features instead of over all pairs of rows,
so B permutations cost one (B x rows) @ (rows x features) product.

The test stays exact whatever the approximation: the landmarks are fit rows (reference rows
that no permutation moves) and the bandwidths depend on them only, so every permutation
sees the same feature map.

Kernels, each a separate statistic (MMDAgg, Schrab et al. JMLR 2023; MMD-FUSE, Biggs et
al. NeurIPS 2023): Gaussian ``exp(-||a-b||^2 / (2 (c s)^2))`` and Laplace (exponential)
``exp(-||a-b|| / (c s))`` for each multiplier ``c`` of the median distance ``s`` between
landmarks. The Laplace kernel uses the Euclidean norm, so it shares the Gaussian's
distances (one GEMM per layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ladis_core.stats._kernels import cross_sq_distances, median_sq_distance

GAUSSIAN = "gaussian"
LAPLACE = "laplace"
FAMILIES = (GAUSSIAN, LAPLACE)
#: eigenvalues below this share of the largest are dropped (numerical rank)
_EIG_REL_TOL = 1e-5


@dataclass(frozen=True)
class KernelSpec:
    """One kernel: ``family`` (gaussian, laplace) at ``multiplier`` times the median distance."""

    family: str
    multiplier: float

    @property
    def label(self) -> str:
        return f"{self.family}×{self.multiplier:g}"


@dataclass(frozen=True)
class LayerFeatures:
    """Feature maps of one layer: ``blocks[k]`` (rows, q_k) float32 per kernel, the
    squared distances of every row to the landmarks ``sq`` (rows, L) and the median
    landmark distance ``scale``."""

    blocks: list[torch.Tensor]
    sq: torch.Tensor
    scale: float


def layer_features(
    rows: torch.Tensor, landmarks: torch.Tensor, specs: list[KernelSpec], max_rank: int
) -> LayerFeatures:
    """Nystroem features of ``rows`` (N, d) for every kernel in ``specs``.

    ``landmarks`` (L,) indexes ``rows``; at most ``max_rank`` features per kernel (the top
    eigen-directions of the landmark kernel matrix)."""
    sq = cross_sq_distances(rows, rows[landmarks])  # (N, L)
    inner = sq[landmarks]  # (L, L)
    n_land = inner.shape[0]
    iu = torch.triu_indices(n_land, n_land, 1, device=rows.device)
    med_sq = median_sq_distance(inner[iu[0], iu[1]][None]) if n_land > 1 else torch.ones(1)
    scale = float(med_sq.sqrt()[0])
    dist = sq.sqrt() if any(s.family == LAPLACE for s in specs) else None
    blocks = []
    for spec in specs:
        width = spec.multiplier * scale
        if spec.family == GAUSSIAN:
            k_nl = torch.mul(sq, -0.5 / (width * width)).exp_()
        else:
            assert dist is not None
            k_nl = torch.mul(dist, -1.0 / width).exp_()
        blocks.append(_nystroem(k_nl, landmarks, max_rank))
    return LayerFeatures(blocks, sq, scale)


def _nystroem(k_nl: torch.Tensor, landmarks: torch.Tensor, max_rank: int) -> torch.Tensor:
    """``K_NL U_q Lambda_q^{-1/2}``: (N, q) float32, q <= max_rank (numerical rank)."""
    k_ll = k_nl[landmarks].double()
    k_ll = 0.5 * (k_ll + k_ll.T)
    values, vectors = torch.linalg.eigh(k_ll)  # ascending
    keep = values > _EIG_REL_TOL * values[-1].clamp_min(1e-300)
    count = min(int(keep.sum()), max_rank)
    values, vectors = values[-count:], vectors[:, -count:]
    proj = (vectors / values.sqrt()).to(k_nl.dtype)
    return k_nl @ proj
