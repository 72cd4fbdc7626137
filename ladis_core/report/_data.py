"""What a report shows: :class:`ReportData` and the objects in it.

A report is a pure function of a :class:`ReportData`. ``_gather`` builds one from storage;
the dashboard may also build one from objects it already holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ladis_core._version import __version__
from ladis_core.monitoring.results import JobResult
from ladis_core.monitoring.scores import WindowScores
from ladis_core.monitoring.triage import Verdict
from ladis_core.viz.images import PerturbationSize, perturbation_size

#: how the original of a flagged input was found
ORIGINAL_RECORDED = "recorded"
ORIGINAL_NEAREST = "nearest-natural"

DEFAULT_MAX_SAMPLES = 100


@dataclass(frozen=True, eq=False)
class ReportSample:
    """One flagged (top-scoring) input of a job, with its images when available.

    ``image`` and ``original`` are float32 arrays of shape (C, H, W) in [0, 1].
    """

    job_id: str
    #: 1-based rank within its job (1 = most suspicious)
    rank: int
    step: int
    score: float
    p_value: float | None = None
    predicted_class: int | None = None
    predicted_name: str | None = None
    #: the request's provenance record (source_index, true_label, attack, epsilon, hour)
    provenance: Mapping[str, Any] | None = None
    image: np.ndarray | None = None
    original: np.ndarray | None = None
    #: ``"recorded"`` (from provenance), ``"nearest-natural"`` (closest reference input in
    #: pixel space, not the true original) or ``None``
    original_kind: str | None = None
    #: where the original came from, e.g. "natural.npz row 17" or "reference step 40"
    original_source: str | None = None
    #: class of the original: the true label when recorded, the model's prediction for a
    #: nearest natural neighbour
    original_class: int | None = None

    @property
    def size(self) -> PerturbationSize | None:
        """L∞ / L2 of ``image - original`` when both are known and of equal shape."""
        if self.image is None or self.original is None or self.image.shape != self.original.shape:
            return None
        return perturbation_size(self.image, self.original)

    def export_dict(self) -> dict[str, Any]:
        """The sample as plain JSON values (no pixels)."""
        size = self.size
        return {
            "job_id": self.job_id,
            "rank": self.rank,
            "step": self.step,
            "score": _finite_or_none(self.score),
            "p_value": _finite_or_none(self.p_value),
            "predicted_class": self.predicted_class,
            "predicted_name": self.predicted_name,
            "provenance": dict(self.provenance) if self.provenance is not None else None,
            "image_available": self.image is not None,
            "original": None
            if self.original_kind is None
            else {
                "kind": self.original_kind,
                "source": self.original_source,
                "class": self.original_class,
            },
            "perturbation": None if size is None else {"linf": size.linf, "l2": size.l2},
        }


@dataclass(frozen=True, eq=False)
class ReportEmbedding:
    """Precomputed 2-D coordinates (e.g. t-SNE) of one layer's representations.

    ``reference`` has shape (n, 2), ``inference`` shape (m, 2), ``inference_steps`` the
    step of each inference row, shape (m,). Computed elsewhere (``ladis_core.viz.embedding``);
    the report only draws it.
    """

    layer: str
    reference: np.ndarray
    inference: np.ndarray
    inference_steps: np.ndarray
    method: str = "t-SNE"
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_embedding2d(
        cls,
        embedding: Any,
        *,
        layer: str,
        inference_steps: np.ndarray,
        reference_group: str = "reference",
        inference_group: str = "inference",
    ) -> ReportEmbedding:
        """From an ``embedding.Embedding2D``; ``inference_steps`` (k,) are the steps of the
        rows of the inference array that was embedded (the points keep their row index)."""
        ref, _ = embedding.of_group(reference_group)
        inf, rows = embedding.of_group(inference_group)
        steps = np.asarray(inference_steps, dtype=np.int64)[rows]
        return cls(
            layer=layer,
            reference=ref,
            inference=inf,
            inference_steps=steps,
            details={
                "seed": embedding.seed,
                "perplexity": embedding.perplexity,
                "pca_dims": embedding.pca_dims,
            },
        )


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything a report shows. Build it with :func:`gather_report_data` (from storage)
    or directly from objects at hand (the dashboard); renderers never read storage."""

    #: the jobs the report is about, by scheduled time
    jobs: list[JobResult]
    #: jobs drawn on the timeline (the report's jobs and their neighbours)
    timeline_jobs: list[JobResult] = field(default_factory=list)
    #: {job id: verdicts, oldest first}
    verdicts: Mapping[str, list[Verdict]] = field(default_factory=dict)
    #: every recorded top sample of ``jobs``, in display priority order
    samples: list[ReportSample] = field(default_factory=list)
    #: {job id: scores of every request of its window}, when the job recorded them
    window_scores: Mapping[str, WindowScores] = field(default_factory=dict)
    #: how many of ``samples`` (from the start) the HTML report shows
    max_html_samples: int = DEFAULT_MAX_SAMPLES
    embedding: ReportEmbedding | None = None
    #: data that could not be read, in words (already free of secrets)
    notes: list[str] = field(default_factory=list)
    title: str = ""
    generated_at: str = ""
    range_start: str | None = None
    range_end: str | None = None
    #: where each job's results were read, {job id: uri}
    sources: Mapping[str, str] = field(default_factory=dict)
    images_included: bool = True
    ladis_version: str = __version__

    @property
    def html_samples(self) -> list[ReportSample]:
        return self.samples[: self.max_html_samples]

    def latest_verdict(self, job_id: str) -> Verdict | None:
        found = self.verdicts.get(job_id) or []
        return found[-1] if found else None

    @property
    def endpoints(self) -> list[str]:
        return sorted({job.endpoint for job in self.jobs})

    @property
    def display_title(self) -> str:
        if self.title:
            return self.title
        endpoints = ", ".join(self.endpoints) or "LADIS"
        if len(self.jobs) == 1:
            return f"Incident report: {endpoints}, job {self.jobs[0].job_id}"
        return f"Incident report: {endpoints}, {len(self.jobs)} jobs"


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
