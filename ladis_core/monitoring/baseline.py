"""The baseline detection rate: the reference split in halves, cached per reference and
settings under ``<output>/_state/baseline/``."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ladis_core import store
from ladis_core.errors import DataNotFoundError, LadisError, StorageError
from ladis_core.monitoring.claims import STATE_DIR
from ladis_core.monitoring.protocol import rates, stats_options
from ladis_core.monitoring.results import JobSettings
from ladis_core.store import layout
from ladis_core.trials import TrialData

log = logging.getLogger("ladis.monitor")


@dataclass(frozen=True)
class BaselineRates:
    """Baseline detection rates in percent: ``combined`` and one per layer."""

    combined: float
    layers: dict[str, float]


class BaselineCache:
    """Baseline rates cached under ``<output>/_state/baseline/<key>.json``.

    The reference does not change between jobs, so its rates are computed once per key:
    the reference (URI, rows, steps), the layers and every setting; a re-captured
    reference or other settings get a new key. The cache is only an optimisation: an
    unreadable entry is recomputed and a store that refuses writes does not stop a job.

    A cached entry is untrusted like everything in storage (whoever writes it could raise
    the alert threshold until no job is ever an incident): it is used only when it names
    the reference it was computed on (URI, rows and a digest of the rows themselves) and
    its rates are plausible for a false-positive rate at ``alpha`` with ``n_repeats``
    repetitions (:func:`plausible_baseline`); otherwise the rates are computed again.
    """

    def __init__(self, output: str) -> None:
        self.output = output.rstrip("/")

    def uri(self, key: str) -> str:
        return layout.join(self.output, STATE_DIR, "baseline", f"{key}.json")

    def get(
        self,
        key: str,
        names: Sequence[str],
        *,
        reference: TrialData,
        settings: JobSettings,
    ) -> BaselineRates | None:
        try:
            cached = store.read_json(self.uri(key))
            rates = BaselineRates(
                float(cached["combined"]), {n: float(cached["layers"][n]) for n in names}
            )
            claims = (cached["reference"], cached["rows"], cached["digest"])
        except (DataNotFoundError, StorageError, KeyError, TypeError, ValueError):
            return None
        bound = plausible_baseline(settings)
        if claims != (reference.uri, len(reference), reference_digest(reference, names)) or not all(
            0.0 <= rate <= bound for rate in (rates.combined, *rates.layers.values())
        ):
            log.warning(
                "the cached baseline %s does not belong to %s or is not a plausible "
                "false-positive rate (at most %.1f%%); it is ignored and recomputed",
                self.uri(key),
                reference.uri,
                bound,
            )
            return None
        return rates

    def put(
        self, key: str, value: BaselineRates, *, reference: TrialData, names: Sequence[str]
    ) -> None:
        document = {
            "combined": value.combined,
            "layers": value.layers,
            "reference": reference.uri,
            "rows": len(reference),
            "digest": reference_digest(reference, names),
        }
        try:
            store.write_json(self.uri(key), document, if_absent=True)
        except LadisError as exc:
            log.warning("could not cache the baseline rates at %s: %s", self.uri(key), exc)


def plausible_baseline(settings: JobSettings) -> float:
    """The highest baseline rate (percent) accepted from the cache: a baseline estimates
    the false-positive rate, at most ``alpha`` for an exact test, so its estimate from
    ``R`` repetitions lies below ``alpha + 4·sqrt(alpha(1 - alpha)/R)`` (plus one
    repetition's worth) unless the reference itself is broken."""
    alpha, repeats = settings.alpha, max(1, settings.n_repeats)
    return min(
        100.0, 100.0 * (alpha + 4.0 * math.sqrt(alpha * (1 - alpha) / repeats)) + 100.0 / repeats
    )


def reference_digest(reference: TrialData, names: Sequence[str]) -> str:
    """A digest of the reference rows the baseline is computed on: steps, predicted
    classes and every tested layer."""
    digest = hashlib.sha256()
    for array in (
        reference.steps,
        reference.predicted_class,
        *(reference.layers[n] for n in names),
    ):
        value = np.ascontiguousarray(array)
        digest.update(str((value.dtype.str, value.shape)).encode())
        digest.update(value.data)
    return digest.hexdigest()


def baseline_key(reference: TrialData, names: Sequence[str], settings: JobSettings) -> str:
    """The cache key of the baseline of ``reference`` for ``names`` and ``settings``."""
    steps = reference.steps
    payload = json.dumps(
        {
            "reference": reference.uri,
            "rows": int(steps.shape[0]),
            "steps": [int(steps.min()), int(steps.max())] if steps.size else [],
            "layers": list(names),
            "settings": {k: v for k, v in settings.__dict__.items() if k != "layers"},
            "version": 2,  # 2: entries carry the reference digest
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def baseline_rates(
    reference: TrialData,
    names: Sequence[str],
    settings: JobSettings,
    *,
    cache: BaselineCache | None = None,
    device: str | None = None,
) -> BaselineRates:
    """Baseline detection rates (combined, per layer) of ``reference``: the reference
    split in halves, one half playing the inference window; from ``cache`` when it has
    them (and stored there otherwise)."""
    from ladis_core import stats

    key = baseline_key(reference, names, settings)
    if cache is not None:
        cached = cache.get(key, names, reference=reference, settings=settings)
        if cached is not None:
            return cached
    outcome = stats.multi_layer_detection_rate(
        {n: reference.layers[n] for n in names},
        None,
        baseline=True,
        reference_classes=reference.predicted_class if settings.class_matched else None,
        **stats_options(settings, device),
    )
    combined, per_layer = rates(outcome, names)
    value = BaselineRates(combined, per_layer)
    if cache is not None:
        cache.put(key, value, reference=reference, names=names)
    return value
