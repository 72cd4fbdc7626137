"""The per-row scores of a tested window: one typed object, one JSON document per job
(``<monitoring>/<job-id>/scores.json``), written by the monitoring job and read back by
the report and the dashboard through this module only."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ladis_core import store
from ladis_core.errors import InputError
from ladis_core.store import layout

SCORES_NAME = "scores.json"


@dataclass(frozen=True, eq=False)
class WindowScores:
    """Per-input scores of every row of a job's window; all arrays have shape (n,), one
    entry per row, in window order.

    ``steps``: int64 step of each row; ``predicted_class``: int64; ``score``:
    ``-log10(p)`` combined over layers; ``p_value``: the calibrated per-input p-value;
    ``layers``: per layer ``{"score": (n,), "p_value": (n,)}``.
    """

    steps: np.ndarray
    predicted_class: np.ndarray
    score: np.ndarray
    p_value: np.ndarray
    score_method: str = ""
    layers: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    job_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``scores.json`` document (non-finite numbers become ``null``)."""
        return {
            "job_id": self.job_id,
            "score_method": self.score_method,
            "steps": [int(v) for v in self.steps],
            "predicted_class": [int(v) for v in self.predicted_class],
            "score": _numbers(self.score),
            "p_value": _numbers(self.p_value),
            "layers": {
                str(name): {str(k): _numbers(v) for k, v in values.items()}
                for name, values in self.layers.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> WindowScores:
        """Parse a ``scores.json`` document; a malformed one raises :class:`InputError`
        naming ``source``."""
        try:
            steps = np.asarray(data["steps"], dtype=np.int64)
            out = cls(
                steps=steps,
                predicted_class=np.asarray(data.get("predicted_class", []), dtype=np.int64),
                score=np.asarray(data["score"], dtype=np.float64),
                p_value=np.asarray(data.get("p_value", []), dtype=np.float64),
                score_method=str(data.get("score_method", "")),
                layers={
                    str(name): {k: np.asarray(v, dtype=np.float64) for k, v in dict(values).items()}
                    for name, values in dict(data.get("layers") or {}).items()
                },
                job_id=str(data.get("job_id", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{source} is not a scores document ({exc})") from None
        if out.score.shape != steps.shape:
            raise InputError(f"{source}: {out.score.size} scores for {steps.size} steps")
        return out


def scores_uri(monitoring: str, job_id: str) -> str:
    return layout.join(monitoring.rstrip("/"), job_id, SCORES_NAME)


def write_scores(monitoring: str, scores: WindowScores) -> str:
    """Store ``scores`` beside the job's results; returns the URI."""
    uri = scores_uri(monitoring, scores.job_id)
    store.write_json(uri, scores.to_dict())
    return uri


def load_scores(monitoring: str, job_id: str) -> WindowScores:
    """The scores of a tested job (:class:`~ladis_core.errors.DataNotFoundError` for an
    untested window or a job that recorded none)."""
    uri = scores_uri(monitoring, job_id)
    return WindowScores.from_dict(store.read_json(uri), source=uri)


def _numbers(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values).ravel()]
