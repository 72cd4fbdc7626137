"""The inference window a job tests, read from the PREDICT trial, and the layers it tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ladis_core.errors import InputError, check
from ladis_core.progress import ProgressCallback, report


def resolve_layers(reference: str, inference: str, layers: Sequence[str] | None) -> list[str]:
    """Tensor names for ``layers`` present in both trials (default: the penultimate
    layer); an unknown name raises :class:`InputError` listing the layers that are there."""
    from ladis_core import trials

    ref_names = trials.list_layers(reference, mode="EVAL")
    inf_names = trials.list_layers(inference, mode="PREDICT")
    return _resolve_layers(
        list(layers) if layers else [trials.penultimate_layer(inf_names)],
        ((inference, "PREDICT", inf_names), (reference, "EVAL", ref_names)),
    )


def _resolve_layers(
    requested: Sequence[str], trials_: Sequence[tuple[str, str, list[str]]]
) -> list[str]:
    """Tensor names for ``requested`` (tensor names like ``avgpool_output_0`` or module
    names like ``layer4.1``), each checked to be present in every trial."""
    names: list[str] = []
    for layer in requested:
        layer = layer.strip()
        check(bool(layer), "an empty layer name was given; separate layer names with commas")
        resolved = None
        for uri, mode, available in trials_:
            if layer in available:
                candidate = layer
            elif f"{layer}_output_0" in available:
                candidate = f"{layer}_output_0"
            else:
                raise InputError(
                    f"layer {layer!r} is not in the {mode} trial {uri}; available layers: "
                    f"{', '.join(available) or 'none'}"
                )
            check(
                resolved in (None, candidate),
                f"layer {layer!r} names different tensors in the two trials",
            )
            resolved = candidate
        assert resolved is not None
        check(resolved not in names, f"layer {layer!r} is given twice")
        names.append(resolved)
    return names


@dataclass(frozen=True)
class Window:
    """The inference rows a job tests: ``steps`` int64 (n,), ``layers`` {name: float32
    (n, d)}, ``classes`` int64 (n,) (predicted classes)."""

    steps: np.ndarray
    layers: dict[str, np.ndarray]
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.steps.shape[0])


def _shape_text(shape: tuple[int, ...]) -> str:
    size = int(np.prod(shape)) if len(shape) else 1
    return f"{size} values" if len(shape) <= 1 else f"shape {tuple(shape)} ({size} values)"


def _trial_cache(trials: Any, uri: str, cache_root: str | None) -> Path | None:
    """The cache folder of one trial under ``cache_root`` (``None``: the trials default,
    ``$LADIS_CACHE_DIR`` or ``.cache``)."""
    if cache_root is None:
        return None
    return Path(cache_root) / "trials" / trials.default_cache_dir(uri).name


def _load_window(
    trials: Any,
    inference: str,
    first: int,
    names: Sequence[str],
    ref: Any,
    cache_dir: str | None,
    progress: ProgressCallback | None,
) -> Window:
    """The inference rows with step ≥ ``first``; checks the layer shapes match the
    reference (on the newest step when the window is empty)."""
    report(progress, "inference", 0, 1, inference)
    cache = _trial_cache(trials, inference, cache_dir)
    data = trials.load_trial(
        inference,
        mode="PREDICT",
        layers=list(names),
        after_step=None if first <= 0 else first - 1,
        cache_dir=cache,
    )
    window = Window(
        steps=np.asarray(data.steps, dtype=np.int64),
        layers={n: np.asarray(data.layers[n]) for n in names},
        classes=np.asarray(data.predicted_class, dtype=np.int64),
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
    for name in names:
        ref_shape, inf_shape = ref.layers[name].shape[1:], probe.layers[name].shape[1:]
        if len(probe) and ref_shape != inf_shape:
            raise InputError(
                f"layer {name!r} has {_shape_text(ref_shape)} per input in the reference trial but "
                f"{_shape_text(inf_shape)} in the inference trial {inference}; both trials must come from "
                "the same model and input size"
            )
    report(progress, "inference", 1, 1, f"{len(window)} requests")
    return window
