"""Feature preparation: centring, and standardisation that keeps the tests exact.

Centring (subtracting the reference mean) changes no distance but keeps the float32
squared distances ``|a|^2 + |b|^2 - 2 a.b`` free of cancellation when activations share a
large offset (e.g. post-ReLU features).

Standardisation must not treat the two tested samples differently. Scaling with a
mean/std fitted on reference rows that are themselves tested makes those rows look more
typical than the inference rows (their own values shrink the fitted spread): on
heavy-tailed null data with 200 reference rows this gave a 49 % false-positive rate.
So the detection-rate protocol fits, per repetition, on the reference rows *not* tested in
that repetition (exact: the fit is independent of the tested rows), and :func:`mmd_test`,
where every row is tested, fits on the pooled sample (invariant under relabelling, exact).
"""

from __future__ import annotations

import torch


def center(reference: torch.Tensor, others: list[torch.Tensor]) -> list[torch.Tensor]:
    """Subtract the reference mean from ``[reference, *others]``."""
    mean = reference.mean(dim=0, keepdim=True)
    return [t - mean for t in (reference, *others)]


def fit_transform(
    fit_rows: torch.Tensor, others: list[torch.Tensor], *, standardize: bool
) -> list[torch.Tensor]:
    """Centre (and with ``standardize`` scale) all matrices with ``fit_rows``' statistics.

    Constant features keep scale 1. Returns ``[fit_rows, *others]`` transformed.
    """
    mean = fit_rows.mean(dim=0, keepdim=True)
    if not standardize:
        return [t - mean for t in (fit_rows, *others)]
    std = fit_rows.std(dim=0, unbiased=False, keepdim=True)
    scale = torch.where(std > 0, std, torch.ones_like(std))
    return [(t - mean) / scale for t in (fit_rows, *others)]


class HeldOutScaler:
    """Per-test feature scales fitted on the reference rows a test does not use.

    ``data`` rows ``[0, n_reference)`` are the (centred) reference. The sums of the
    reference are kept in float64 so that removing a test's rows is exact enough.
    """

    def __init__(self, data: torch.Tensor, n_reference: int) -> None:
        ref = data[:n_reference].double()
        self.n_reference = n_reference
        self.sum1 = ref.sum(dim=0)
        self.sum2 = (ref * ref).sum(dim=0)

    def scales(self, tested_ref: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Inverse std per test, (c, 1, d) float32.

        ``tested_ref`` (c, k, d): the reference rows each test uses (distinct rows);
        ``pooled`` (c, 2n, d): all rows it tests, used instead when fewer than 2 reference
        rows are left out (still exact: pooled statistics are relabelling-invariant).
        """
        count = self.n_reference - tested_ref.shape[1]
        if count >= 2:
            sub = tested_ref.double()
            mean = (self.sum1 - sub.sum(dim=1)) / count
            var = (self.sum2 - (sub * sub).sum(dim=1)) / count - mean * mean
        else:
            var = pooled.double().var(dim=1, unbiased=False)
        std = var.clamp_min(0.0).sqrt()
        inv = torch.where(std > 0, 1.0 / std, torch.ones_like(std))
        return inv.to(torch.float32).unsqueeze(1)
