"""The baseline detection rate: the reference split in halves, cached per reference and
settings under ``<output>/_state/baseline/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ladis_core import store
from ladis_core.errors import DataNotFoundError, LadisError, StorageError
from ladis_core.monitoring.claims import STATE_DIR
from ladis_core.monitoring.protocol import _rates, _stats_options
from ladis_core.monitoring.results import (
    JobSettings,
)
from ladis_core.store import layout

log = logging.getLogger("ladis.monitor")


def _baseline_key(
    reference: str, ref_steps: np.ndarray, layers: Sequence[str], settings: JobSettings
) -> str:
    payload = json.dumps(
        {
            "reference": reference,
            "rows": int(ref_steps.shape[0]),
            "steps": [int(ref_steps.min()), int(ref_steps.max())] if ref_steps.size else [],
            "layers": list(layers),
            "settings": {k: v for k, v in settings.__dict__.items() if k != "layers"},
            "version": 1,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _baseline(
    output: str,
    reference_uri: str,
    ref: Any,
    names: Sequence[str],
    settings: JobSettings,
    *,
    use_cache: bool,
    device: str | None,
) -> tuple[float, dict[str, float]]:
    """Baseline detection rates (combined, per layer): the reference split in halves.

    The reference does not change between jobs, so the rates are cached under
    ``<output>/_state/baseline/`` keyed by the reference (URI, rows, steps), the layers
    and every setting; a re-captured reference or other settings get a new key.
    """
    from ladis_core import stats

    key = _baseline_key(reference_uri, ref.steps, names, settings)
    cache_uri = layout.join(output, STATE_DIR, "baseline", f"{key}.json")
    if use_cache:
        try:
            cached = store.read_json(cache_uri)
            return float(cached["combined"]), {n: float(cached["layers"][n]) for n in names}
        except (DataNotFoundError, StorageError, KeyError, TypeError, ValueError):
            pass
    outcome = stats.multi_layer_detection_rate(
        {n: ref.layers[n] for n in names},
        None,
        baseline=True,
        reference_classes=ref.predicted_class if settings.class_matched else None,
        **_stats_options(settings, device),
    )
    combined, per_layer = _rates(outcome, names)
    if use_cache:
        try:
            store.write_json(
                cache_uri,
                {
                    "combined": combined,
                    "layers": per_layer,
                    "reference": reference_uri,
                    "rows": len(ref),
                },
                if_absent=True,
            )
        except LadisError as exc:  # only an optimisation: a read-only store must not stop a job
            log.warning("could not cache the baseline rates at %s: %s", cache_uri, exc)
    return combined, per_layer
