"""The baseline detection rate: the reference split in halves, cached per reference and
settings under ``<output>/_state/baseline/``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

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
    """

    def __init__(self, output: str) -> None:
        self.output = output.rstrip("/")

    def uri(self, key: str) -> str:
        return layout.join(self.output, STATE_DIR, "baseline", f"{key}.json")

    def get(self, key: str, names: Sequence[str]) -> BaselineRates | None:
        try:
            cached = store.read_json(self.uri(key))
            return BaselineRates(
                float(cached["combined"]), {n: float(cached["layers"][n]) for n in names}
            )
        except (DataNotFoundError, StorageError, KeyError, TypeError, ValueError):
            return None

    def put(self, key: str, value: BaselineRates, *, reference: TrialData) -> None:
        document = {
            "combined": value.combined,
            "layers": value.layers,
            "reference": reference.uri,
            "rows": len(reference),
        }
        try:
            store.write_json(self.uri(key), document, if_absent=True)
        except LadisError as exc:
            log.warning("could not cache the baseline rates at %s: %s", self.uri(key), exc)


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
            "version": 1,
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
    if cache is not None and (cached := cache.get(key, names)) is not None:
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
        cache.put(key, value, reference=reference)
    return value
