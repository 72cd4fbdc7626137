"""Pictures of flagged inputs: the input from the inference trial, and its original.

The original is the natural image the request was made from when provenance recorded it
(``trials/<endpoint>/provenance`` + ``datasets/<endpoint>/natural.npz``, see
docs/architecture.md, "Formats a world holds"); otherwise the nearest natural image in the reference trial (pixel
space), labelled as such. Anything unreadable becomes a note, never an error.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ladis_core import store
from ladis_core.config import redact
from ladis_core.errors import DataNotFoundError, LadisError
from ladis_core.monitoring.results import JobResult
from ladis_core.report._data import ORIGINAL_NEAREST, ORIGINAL_RECORDED, ReportSample
from ladis_core.store import layout

if TYPE_CHECKING:
    from ladis_core.access.sources import SourcePolicy

log = logging.getLogger(__name__)

_TRIAL_PATH = re.compile(r"^(?P<world>.*)/trials/(?P<endpoint>[^/]+)/inference/?$")


def note(notes: list[str], text: str) -> None:
    """Add ``text`` (secrets removed) to ``notes`` once."""
    text = redact(text)
    if text not in notes:
        notes.append(text)


@dataclass
class WorldCache:
    """Per-world data read at most once while gathering (provenance, natural set,
    reference), and the sources it may be read from (``None``: anywhere)."""

    provenance: dict[str, dict[int, dict] | None] = field(default_factory=dict)
    natural: dict[str, tuple[np.ndarray, np.ndarray, list[str]] | None] = field(
        default_factory=dict
    )
    reference: dict[str, Any] = field(default_factory=dict)
    allowed: SourcePolicy | None = None

    def may_read(self, uri: str, notes: list[str], *, what: str) -> bool:
        """Whether ``uri`` (named in a stored result, so untrusted) may be read; a refusal
        becomes a note naming the allow-list."""
        if self.allowed is None or self.allowed.allows(uri):
            return True
        note(notes, self.allowed.refusal(uri, what=what))
        return False


def _world_of(job: JobResult, world: str | None) -> tuple[str | None, str]:
    match = _TRIAL_PATH.match(job.inference)
    if match:
        return match.group("world"), match.group("endpoint")
    return world, job.endpoint


def _load_provenance(cache: WorldCache, uri: str, notes: list[str]) -> dict[int, dict] | None:
    if uri not in cache.provenance:
        records: dict[int, dict] | None = None
        try:
            from ladis_core import trials

            records = {int(k): dict(v) for k, v in trials.load_provenance(uri).items()} or None
        except (ImportError, DataNotFoundError) as exc:
            log.info("no provenance at %s: %s", uri, exc)
        except LadisError as exc:
            note(
                notes,
                f"provenance at {uri} could not be read ({exc}); originals fall back to nearest neighbours",
            )
        cache.provenance[uri] = records
    return cache.provenance[uri]


def _load_natural(
    cache: WorldCache, uri: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    if uri not in cache.natural:
        try:
            with np.load(io.BytesIO(store.read_bytes(uri)), allow_pickle=False) as npz:
                images = np.asarray(npz["images"], dtype=np.float32)
                labels = np.asarray(npz["labels"], dtype=np.int64)
                names = [str(n) for n in npz["class_names"]] if "class_names" in npz.files else []
            cache.natural[uri] = (images, labels, names)
        except DataNotFoundError:
            cache.natural[uri] = None
        except (LadisError, KeyError, ValueError, OSError) as exc:
            note(
                notes,
                f"the natural data set {uri} could not be read ({exc}); originals are not shown",
            )
            cache.natural[uri] = None
    return cache.natural[uri]


def _load_reference_inputs(
    cache: WorldCache, uri: str, notes: list[str], *, cache_dir: str | None
) -> Any:
    if uri not in cache.reference:
        try:
            from ladis_core import trials

            data = trials.load_trial(uri, mode="EVAL", include_inputs=True, cache_dir=cache_dir)
            cache.reference[uri] = data if data.inputs is not None and len(data) else None
            if cache.reference[uri] is None:
                note(
                    notes,
                    f"the reference trial {uri} has no recorded inputs; no nearest natural neighbours",
                )
        except (LadisError, ImportError) as exc:
            note(
                notes,
                f"the reference trial {uri} could not be read ({exc}); no nearest natural neighbours",
            )
            cache.reference[uri] = None
    return cache.reference[uri]


def _nearest_rows(candidates: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into ``candidates`` (n, d) of the nearest row (L2) to each of ``queries`` (m, d).

    float32 and ``|q|² - 2 q·c + |c|²`` keep memory at the (m, n) distance matrix: a
    reference of 10,000 64×64 RGB images is 0.5 GB already, so no float64 copy of it."""
    cand = np.asarray(candidates, dtype=np.float32)
    query = np.asarray(queries, dtype=np.float32)
    cand_norms = np.einsum("ij,ij->i", cand, cand)
    query_norms = np.einsum("ij,ij->i", query, query)
    dist = query_norms[:, None] - 2.0 * (query @ cand.T) + cand_norms[None, :]
    return dist.argmin(axis=1)


def attach_provenance(
    job: JobResult,
    samples: list[ReportSample],
    *,
    world: str | None,
    cache: WorldCache,
    notes: list[str],
) -> list[ReportSample]:
    """Samples of ``job`` with their provenance record, when the world has provenance."""
    world_uri, endpoint = _world_of(job, world)
    if world_uri is None or not samples:
        return samples
    uri = layout.provenance_uri(world_uri, endpoint)
    if not cache.may_read(uri, notes, what=f"the provenance of job {job.job_id}"):
        return samples
    provenance = _load_provenance(cache, uri, notes)
    if not provenance:
        return samples
    return [replace(s, provenance=provenance.get(s.step)) for s in samples]


def attach_images(
    job: JobResult,
    samples: list[ReportSample],
    *,
    world: str | None,
    cache: WorldCache,
    notes: list[str],
    cache_dir: str | None = None,
) -> list[ReportSample]:
    """Samples of ``job`` with their input and original filled in where they can be read;
    otherwise unchanged, with a note saying why."""
    if not samples:
        return samples
    if not cache.may_read(job.inference, notes, what=f"the inference trial of job {job.job_id}"):
        return samples
    steps = [s.step for s in samples]
    try:
        from ladis_core import trials

        trial = trials.load_trial(
            job.inference,
            mode="PREDICT",
            include_inputs=True,
            after_step=min(steps) - 1,
            until_step=max(steps),
            cache_dir=cache_dir,
        )
    except ImportError:
        note(notes, "images are not shown: the trial reader (ladis_core.trials) is not available")
        return samples
    except LadisError as exc:
        note(
            notes,
            f"images of job {job.job_id} are not shown: its inference trial {job.inference} "
            f"could not be read ({exc}); scores and provenance are still listed",
        )
        return samples
    if trial.inputs is None:
        note(
            notes,
            f"images of job {job.job_id} are not shown: the inference trial recorded no inputs",
        )
        return samples
    row_of = {int(step): row for row, step in enumerate(np.asarray(trial.steps))}

    world_uri, endpoint = _world_of(job, world)
    natural = None
    dataset = None if world_uri is None else layout.dataset_uri(world_uri, endpoint)
    if (
        dataset is not None
        and any(s.provenance is not None for s in samples)
        and cache.may_read(dataset, notes, what=f"the natural data set of job {job.job_id}")
    ):
        natural = _load_natural(cache, dataset, notes)

    out: list[ReportSample] = []
    missing_nearest: list[int] = []
    for sample in samples:
        row = row_of.get(sample.step)
        image = None if row is None else np.asarray(trial.inputs[row], dtype=np.float32)
        record = sample.provenance
        original = kind = source = None
        original_class = None
        if record is not None and natural is not None and image is not None:
            index = record.get("source_index")
            images, labels, _names = natural
            if (
                isinstance(index, int)
                and 0 <= index < len(images)
                and images[index].shape == image.shape
            ):
                original, kind = images[index], ORIGINAL_RECORDED
                source = f"natural.npz row {index}"
                original_class = (
                    int(labels[index]) if index < len(labels) else record.get("true_label")
                )
        updated = replace(
            sample,
            image=image,
            original=original,
            original_kind=kind,
            original_source=source,
            original_class=original_class,
        )
        if image is not None and original is None:
            missing_nearest.append(len(out))
        out.append(updated)

    missing_rows = [s.step for s in samples if s.step not in row_of]
    if missing_rows:
        note(
            notes,
            f"job {job.job_id}: {len(missing_rows)} flagged steps are missing from the inference trial",
        )
    if missing_nearest and cache.may_read(
        job.reference, notes, what=f"the reference trial of job {job.job_id}"
    ):
        reference = _load_reference_inputs(cache, job.reference, notes, cache_dir=cache_dir)
        if reference is not None:
            ref_inputs = np.asarray(reference.inputs, dtype=np.float32)
            queries = np.stack([out[i].image for i in missing_nearest])
            if ref_inputs.shape[1:] == queries.shape[1:]:
                nearest = _nearest_rows(
                    ref_inputs.reshape(len(ref_inputs), -1), queries.reshape(len(queries), -1)
                )
                ref_classes = (
                    np.asarray(reference.predicted_class)
                    if reference.predicted_class is not None
                    else None
                )
                for i, ref_row in zip(missing_nearest, nearest, strict=True):
                    out[i] = replace(
                        out[i],
                        original=ref_inputs[ref_row],
                        original_kind=ORIGINAL_NEAREST,
                        original_source=(
                            f"reference row {int(ref_row)} (step {int(np.asarray(reference.steps)[ref_row])})"
                        ),
                        original_class=None if ref_classes is None else int(ref_classes[ref_row]),
                    )
            else:
                note(
                    notes,
                    "reference inputs have another shape than the inference inputs; no nearest neighbours",
                )
    return out
