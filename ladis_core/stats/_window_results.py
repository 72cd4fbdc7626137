"""The typed result of :func:`~ladis_core.stats.window_test`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ladis_core.stats._share import ShareEstimate, estimate_share
from ladis_core.stats._validation import ClassCodes
from ladis_core.stats._window_design import Design
from ladis_core.stats._window_inputs import Side
from ladis_core.stats._window_permutations import PermutationOutcome

METHOD = "window-max-statistic"
#: the label of the per-input neighbour-score statistic beside the kernels
NEIGHBOURS = "neighbours"


@dataclass(frozen=True)
class ClassShare:
    """One predicted class of the window: its rows on each side and the share of its
    window rows that look crafted (``share``; ``None`` when it could not be tested)."""

    label: Any
    reference_rows: int
    window_rows: int
    share: ShareEstimate | None

    def to_dict(self) -> dict[str, Any]:
        label = self.label.item() if hasattr(self.label, "item") else self.label
        return {
            "label": label,
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "share": None if self.share is None else self.share.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class PermutationRecord:
    """What a window test permuted (``keep_permutations=True``), to check it from outside.

    ``pairs`` (P, 2): (reference row, inference row) of each swappable pair, as indices
    into the caller's arrays; ``swaps`` (B + 1, P) bool: which pairs each labelling swaps
    (row 0: none, the observed one); ``fit_rows``: the reference rows no labelling moves;
    ``statistics`` (S, B + 1): every single statistic (``labels``) under each labelling.
    """

    pairs: np.ndarray
    swaps: np.ndarray
    fit_rows: np.ndarray
    statistics: np.ndarray
    labels: list[str]


@dataclass(frozen=True, eq=False)
class WindowTestResult:
    """Outcome of one window test (every distinct row of the window, one decision).

    Attributes:
        p_value: exact permutation p-value of the max-statistic over layers and kernels,
            in [1/(B+1), 1].
        reject: ``p_value < alpha``.
        alpha: the level of the decision.
        layers: ``{layer: p-value}`` of each layer's own max over its statistics (exact).
        kernels: ``{layer: {statistic: p-value}}`` of each single statistic: the MMD of each
            kernel (``"gaussian×0.5"`` ...) and the neighbour score (``"neighbours"``).
        neighbours_p_value: p-value of the all-layer neighbour score (None: one layer).
        adversarial_share: share of the window's distinct inputs that look crafted.
        sample_p_values: ndarray of shape (rows,), the calibrated per-input p-value of every
            inference row (a repeat gets its input's; NaN for rows left out).
        classes: per predicted class (class-conditional tests only), in label order.
        duplicates: inference rows that repeat an earlier input (tested once).
        reference_duplicates: the same for the reference.
        n_reference, n_inference: distinct rows compared on each side.
        n_pairs: pairs the permutations swap; n_permutations: B.
        statistic: the observed max-statistic (standardised by the permutation moments).
        class_conditional: whether rows were compared given their predicted class.
        warnings: what the analyst should know (rows left out, too few permutations ...).
        permutations: the labellings and statistics (with ``keep_permutations=True``).
    """

    p_value: float
    reject: bool
    alpha: float
    layers: dict[str, float]
    kernels: dict[str, dict[str, float]]
    neighbours_p_value: float | None
    adversarial_share: ShareEstimate
    sample_p_values: np.ndarray
    duplicates: int
    reference_duplicates: int
    n_reference: int
    n_inference: int
    n_pairs: int
    n_permutations: int
    statistic: float
    class_conditional: bool
    classes: list[ClassShare] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    method: str = METHOD
    permutations: PermutationRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready summary (without the per-row p-values)."""
        return {
            "p_value": self.p_value,
            "reject": self.reject,
            "alpha": self.alpha,
            "layers": dict(self.layers),
            "kernels": {k: dict(v) for k, v in self.kernels.items()},
            "neighbours_p_value": self.neighbours_p_value,
            "adversarial_share": self.adversarial_share.to_dict(),
            "duplicates": self.duplicates,
            "reference_duplicates": self.reference_duplicates,
            "n_reference": self.n_reference,
            "n_inference": self.n_inference,
            "n_pairs": self.n_pairs,
            "n_permutations": self.n_permutations,
            "statistic": self.statistic,
            "class_conditional": self.class_conditional,
            "classes": [c.to_dict() for c in self.classes],
            "warnings": list(self.warnings),
            "method": self.method,
        }


def assemble(
    outcome: PermutationOutcome,
    *,
    names: list[str],
    labels: list[str],
    design: Design,
    sides: tuple[Side, Side],
    sample_p: np.ndarray,
    codes: ClassCodes | None,
    alpha: float,
    n_permutations: int,
    share_options: dict[str, float],
    bits: np.ndarray | None = None,
) -> WindowTestResult:
    """The result of a window test from its parts (shapes in :class:`WindowTestResult`);
    ``bits`` (B + 1, P) of the permutations to keep a :class:`PermutationRecord`."""
    ref, inf = sides
    per_distinct = np.full(len(inf.distinct), np.nan)
    per_distinct[design.window_rows] = sample_p
    n_kernels, n_layers = len(labels) - 1, len(names)
    kernels = {
        name: dict(
            zip(
                labels,
                [
                    *outcome.single[i * n_kernels : (i + 1) * n_kernels],
                    outcome.single[n_layers * n_kernels + i],
                ],
                strict=True,
            )
        )
        for i, name in enumerate(names)
    }
    n_calibration = design.n_pairs
    warnings = list(design.warnings)
    if inf.repeats or ref.repeats:
        warnings.append(
            f"{inf.repeats} inference and {ref.repeats} reference row(s) repeat an earlier input "
            "of their side; each input was tested once"
        )
    if 1.0 / (n_permutations + 1) >= alpha:
        warnings.append(
            f"n_permutations={n_permutations} is too small for alpha={alpha:g}: the smallest "
            f"possible p-value is {1 / (n_permutations + 1):.3g}; use n_permutations >= "
            f"{int(np.ceil(1 / alpha))}"
        )
    return WindowTestResult(
        p_value=outcome.p_value,
        reject=outcome.p_value < alpha,
        alpha=alpha,
        layers=dict(zip(names, outcome.groups[:n_layers], strict=True)),
        kernels=kernels,
        neighbours_p_value=outcome.single[-1] if n_layers > 1 else None,
        adversarial_share=estimate_share(sample_p, n_calibration=n_calibration, **share_options),
        sample_p_values=per_distinct[inf.inverse],
        duplicates=inf.repeats,
        reference_duplicates=ref.repeats,
        n_reference=len(design.reference_rows),
        n_inference=len(design.window_rows),
        n_pairs=len(design.pair_reference),
        n_permutations=n_permutations,
        statistic=outcome.statistic,
        class_conditional=codes is not None,
        classes=[]
        if codes is None
        else _class_shares(design, sample_p, ref, inf, codes, share_options),
        warnings=warnings,
        permutations=None
        if bits is None
        else _record(outcome, design, ref, inf, names, labels, bits),
    )


def _record(
    outcome: PermutationOutcome,
    design: Design,
    ref: Side,
    inf: Side,
    names: list[str],
    labels: list[str],
    bits: np.ndarray,
) -> PermutationRecord:
    n_ref = len(design.reference_rows)
    to_ref = ref.distinct[design.reference_rows]
    to_inf = inf.distinct[design.window_rows]
    kernels = [f"{n}/{label}" for n in names for label in labels[:-1]]
    neighbours = [f"{n}/{labels[-1]}" for n in names]
    combined = [f"all layers/{labels[-1]}"] if len(names) > 1 else []
    return PermutationRecord(
        pairs=np.stack([to_ref[design.pair_reference], to_inf[design.pair_window - n_ref]], 1),
        swaps=bits.astype(bool),
        fit_rows=np.sort(to_ref[design.fit_rows]),
        statistics=outcome.statistics,
        labels=kernels + neighbours + combined,
    )


def _class_shares(
    design: Design,
    sample_p: np.ndarray,
    ref: Side,
    inf: Side,
    codes: ClassCodes,
    share_options: dict[str, float],
) -> list[ClassShare]:
    """Per predicted class of the window's distinct inputs: rows and the crafted share."""
    n_ref = len(design.reference_rows)
    win_codes = design.class_codes[n_ref:]
    ref_all = codes.reference[ref.distinct]
    inf_all = codes.inference[inf.distinct]
    out = []
    for c in np.unique(inf_all):
        mine = win_codes == c
        share = None
        if mine.any():
            cal_rows = int(np.sum(design.class_codes[design.pair_reference] == c))
            share = estimate_share(sample_p[mine], n_calibration=max(cal_rows, 1), **share_options)
        out.append(
            ClassShare(
                label=codes.name(int(c)),
                reference_rows=int(np.sum(ref_all == c)),
                window_rows=int(np.sum(inf_all == c)),
                share=share,
            )
        )
    return out
