"""What a job's window test found, as stored in ``results.json`` (``window_test``).

:class:`WindowEvidence` is the part of a :class:`~ladis_core.stats.WindowTestResult` that
a result keeps: the window p-value that decides the incident, the per-layer p-values, the
estimated share of crafted inputs with its interval, the rows the decision rests on and
the per-class view. Older results have none (``JobResult.window_test is None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ladis_core.stats._share import ShareEstimate

#: below this many reference rows per predicted class of the window a result warns: with
#: half of them as neighbours and half as calibration rows, 40 give 20 of each, so
#: calibrated per-input p-values are finer than 0.05 and k = 5 neighbours are a quarter
#: of the natural rows of the class
REFERENCE_ROWS_PER_CLASS = 40


@dataclass(frozen=True)
class ClassEvidence:
    """One predicted class of the window: rows on each side and the share of its window
    rows that look crafted (``None`` when the reference has no row of the class)."""

    predicted_class: int
    reference_rows: int
    window_rows: int
    share: ShareEstimate | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicted_class": self.predicted_class,
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "share": None if self.share is None else self.share.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ClassEvidence:
        share = data.get("share")
        return cls(
            predicted_class=int(data["predicted_class"]),
            reference_rows=int(data["reference_rows"]),
            window_rows=int(data["window_rows"]),
            share=None if share is None else ShareEstimate.from_dict(share),
        )


@dataclass(frozen=True)
class WindowEvidence:
    """The window test of one job (every distinct row of the window, one exact test).

    ``p_value``: the window p-value (an incident when below the rule's alpha);
    ``layers``: per-layer p-values; ``share``: the estimated share of inputs that look
    crafted; ``reference_rows`` / ``window_rows``: distinct rows compared;
    ``duplicates``: window rows that repeated an earlier input (tested once).
    """

    p_value: float
    layers: dict[str, float]
    share: ShareEstimate
    reference_rows: int
    window_rows: int
    duplicates: int = 0
    reference_duplicates: int = 0
    n_permutations: int = 0
    statistics: dict[str, dict[str, float]] = field(default_factory=dict)
    classes: list[ClassEvidence] = field(default_factory=list)
    method: str = "window-max-statistic"

    @classmethod
    def from_test(cls, result: Any) -> WindowEvidence:
        """From a :class:`~ladis_core.stats.WindowTestResult` (predicted classes as ints)."""
        return cls(
            p_value=float(result.p_value),
            layers={k: float(v) for k, v in result.layers.items()},
            share=result.adversarial_share,
            reference_rows=int(result.n_reference),
            window_rows=int(result.n_inference),
            duplicates=int(result.duplicates),
            reference_duplicates=int(result.reference_duplicates),
            n_permutations=int(result.n_permutations),
            statistics={k: {s: float(p) for s, p in v.items()} for k, v in result.kernels.items()},
            classes=[
                ClassEvidence(int(c.label), c.reference_rows, c.window_rows, c.share)
                for c in result.classes
            ],
            method=str(result.method),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_value": self.p_value,
            "layers": dict(self.layers),
            "share": self.share.to_dict(),
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "duplicates": self.duplicates,
            "reference_duplicates": self.reference_duplicates,
            "n_permutations": self.n_permutations,
            "statistics": {k: dict(v) for k, v in self.statistics.items()},
            "classes": [c.to_dict() for c in self.classes],
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Any) -> WindowEvidence:
        """From :meth:`to_dict`'s output; ``KeyError``/``TypeError``/``ValueError`` (and
        :class:`~ladis_core.errors.InputError`) when malformed."""
        p_value = float(data["p_value"])
        if not 0.0 < p_value <= 1.0:
            raise ValueError(f"window p-value {p_value} is not in (0, 1]")
        return cls(
            p_value=p_value,
            layers={str(k): float(v) for k, v in dict(data.get("layers") or {}).items()},
            share=ShareEstimate.from_dict(data["share"]),
            reference_rows=int(data["reference_rows"]),
            window_rows=int(data["window_rows"]),
            duplicates=int(data.get("duplicates", 0)),
            reference_duplicates=int(data.get("reference_duplicates", 0)),
            n_permutations=int(data.get("n_permutations", 0)),
            statistics={
                str(k): {str(s): float(p) for s, p in dict(v).items()}
                for k, v in dict(data.get("statistics") or {}).items()
            },
            classes=[ClassEvidence.from_dict(c) for c in data.get("classes") or []],
            method=str(data.get("method", "window-max-statistic")),
        )


def reference_floor(n_classes: int) -> int:
    """Reference rows below which a decision is flagged as resting on too few."""
    return REFERENCE_ROWS_PER_CLASS * max(1, n_classes)
