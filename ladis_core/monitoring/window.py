"""The rows a job tests: the reference it tests against and the inference window, read
from their trials, and the layers both hold."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ladis_core import trials
from ladis_core.errors import InputError, check
from ladis_core.monitoring.results import JobSettings
from ladis_core.progress import ProgressCallback, report
from ladis_core.trials.names import resolve_common_layers

log = logging.getLogger("ladis.monitor")

#: the most inference steps (requests) one job tests. A window is normally an hour of
#: traffic (a few hundred requests); after an outage the backlog can be days. Past the
#: bound a job tests the oldest MAX_WINDOW_STEPS steps, the bookmark moves to the last of
#: them and the next jobs go on from there, so memory stays bounded (20,000 steps of a
#: 512-wide layer and 10 logits are about 42 MB) and nothing is skipped.
MAX_WINDOW_STEPS = 20_000


def resolve_layers(reference: str, inference: str, layers: Sequence[str] | None) -> list[str]:
    """Tensor names for ``layers`` present in both trials (default: the penultimate
    layer the captures recorded, the reference's record first); an unknown name raises
    :class:`InputError` listing the layers that are there."""
    ref_names = trials.list_layers(reference, mode="EVAL")
    inf_names = trials.list_layers(inference, mode="PREDICT")
    if not layers:
        meta = trials.trial_meta(reference) or trials.trial_meta(inference)
        layers = [trials.penultimate_layer(inf_names, meta)]
    return resolve_common_layers(
        list(layers),
        ((inference, "PREDICT", inf_names), (reference, "EVAL", ref_names)),
    )


@dataclass(frozen=True)
class Window:
    """The inference rows a job tests: ``steps`` int64 (n,), ``layers`` {name: float32
    (n, d)}, ``classes`` int64 (n,) (predicted classes)."""

    steps: np.ndarray
    layers: dict[str, np.ndarray]
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @classmethod
    def from_trial(cls, data: trials.TrialData, names: Sequence[str]) -> Window:
        """The rows of ``data`` (a PREDICT read) on the layers ``names``."""
        return cls(
            steps=np.asarray(data.steps, dtype=np.int64),
            layers={n: np.asarray(data.layers[n]) for n in names},
            classes=np.asarray(data.predicted_class, dtype=np.int64),
        )


def trial_cache(uri: str, cache_root: str | None) -> Path | None:
    """The cache folder of one trial under ``cache_root`` (``None``: the trials default,
    ``$LADIS_CACHE_DIR`` or ``.cache``)."""
    if cache_root is None:
        return None
    return Path(cache_root) / "trials" / trials.default_cache_dir(uri).name


def load_reference(
    reference: str, names: Sequence[str], *, settings: JobSettings, cache_dir: str | None = None
) -> trials.TrialData:
    """The reference rows on ``names``; :class:`InputError` unless there are at least
    ``2 · n_samples`` (two halves for the baseline)."""
    ref = trials.load_trial(
        reference, mode="EVAL", layers=list(names), cache_dir=trial_cache(reference, cache_dir)
    )
    need = 2 * settings.n_samples
    check(
        len(ref) >= need,
        f"the reference trial {reference} has {len(ref)} rows; n_samples={settings.n_samples} "
        f"needs at least {need} (two halves for the baseline): capture more validation data "
        "or lower n",
    )
    return ref


def check_shapes(ref: trials.TrialData, probe: trials.TrialData, names: Sequence[str]) -> None:
    """:class:`InputError` when a layer of ``probe`` (an inference read with rows) has
    another shape per input than in the reference."""
    if not len(probe):
        return
    for name in names:
        ref_shape, inf_shape = ref.layers[name].shape[1:], probe.layers[name].shape[1:]
        if ref_shape != inf_shape:
            raise InputError(
                f"layer {name!r} has {_shape_text(ref_shape)} per input in the reference trial "
                f"but {_shape_text(inf_shape)} in the inference trial {probe.uri}; both trials "
                "must come from the same model and input size"
            )


def load_window(
    inference: str,
    first: int,
    names: Sequence[str],
    ref: trials.TrialData,
    *,
    cache_dir: str | None = None,
    progress: ProgressCallback | None = None,
    max_steps: int = MAX_WINDOW_STEPS,
) -> Window:
    """The inference rows with ``first ≤ step < first + max_steps`` (only those are
    listed, fetched and decoded); checks the layer shapes match the reference (on the
    newest step when the window is empty)."""
    check(max_steps >= 1, f"max_window_steps={max_steps} must be at least 1")
    report(progress, "inference", 0, 1, inference)
    cache = trial_cache(inference, cache_dir)
    start = max(0, first)
    data = trials.load_trial(
        inference,
        mode="PREDICT",
        layers=list(names),
        after_step=None if start == 0 else start - 1,
        until_step=start + max_steps - 1,
        cache_dir=cache,
    )
    window = Window.from_trial(data, names)
    if len(window) and int(window.steps.max()) >= start + max_steps - 1:
        newest = trials.last_step(inference, mode="PREDICT")
        if newest is not None and newest > start + max_steps - 1:
            log.warning(
                "%d inference steps wait after step %d (a backlog); this job tests the "
                "%d from step %d, the next jobs go on from step %d",
                newest - start + 1,
                start - 1,
                max_steps,
                start,
                start + max_steps,
            )
    probe = data
    if not len(window):
        last = trials.last_step(inference, mode="PREDICT")
        if last is not None:
            probe = trials.load_trial(
                inference,
                mode="PREDICT",
                layers=list(names),
                after_step=last - 1,
                until_step=last,
                cache_dir=cache,
            )
    check_shapes(ref, probe, names)
    report(progress, "inference", 1, 1, f"{len(window)} requests")
    return window


def _shape_text(shape: tuple[int, ...]) -> str:
    size = int(np.prod(shape)) if len(shape) else 1
    return f"{size} values" if len(shape) <= 1 else f"shape {tuple(shape)} ({size} values)"
