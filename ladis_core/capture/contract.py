"""Hooks for training and serving scripts that manage an smdebug hook themselves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ladis_core.capture.hooks import _close_smdebug_hook
from ladis_core.capture.reference import EvalCapture
from ladis_core.capture.staging import CaptureSummary, _StagedCapture


def training_hook(
    out: str,
    *,
    model: nn.Module | None = None,
    layers: Sequence[str] = (),
    save_every: int = 1,
    include_inputs: bool = True,
    overwrite: bool = False,
    penultimate: str | None = None,
    input_shape: Sequence[int] | None = None,
) -> Any:
    """An smdebug hook saving EVAL-mode steps (every ``save_every``-th forward pass in
    EVAL mode) into the trial ``out``; registered on ``model`` when given (otherwise call
    ``hook.register_module(model)`` yourself: layer names are then not checked).

    Switch modes with ``hook.set_mode(smdebug.modes.TRAIN / EVAL)``; finish with
    :func:`close_hook` (which publishes to ``out``). Prefer :class:`EvalCapture`.
    """
    capture = EvalCapture(
        model,
        out,
        layers=layers,
        save_every=save_every,
        include_inputs=include_inputs,
        overwrite=overwrite,
        penultimate=penultimate,
        input_shape=input_shape,
    )
    return capture.hook


def serving_hook(
    out: str,
    *,
    model: nn.Module | None = None,
    layers: Sequence[str] = (),
    include_inputs: bool = True,
    penultimate: str | None = None,
    input_shape: Sequence[int] | None = None,
) -> Any:
    """An smdebug hook saving every forward pass as a PREDICT step, appended to the trial
    ``out``; finish with :func:`close_hook`. Not thread-safe by itself: serve through
    :class:`ServingCapture`, which adds the lock and the periodic upload."""
    capture = _StagedCapture(
        model,
        out,
        mode="PREDICT",
        layers=layers,
        save_every=1,
        include_inputs=include_inputs,
        append=True,
        penultimate=penultimate,
        input_shape=input_shape,
    )
    return capture.hook


def close_hook(hook: Any) -> CaptureSummary | None:
    """Close a hook made by :func:`training_hook` / :func:`serving_hook` (publishing
    what it staged), or any smdebug hook (closing it and unregistering its exit handler).
    Safe to call twice."""
    capture = getattr(hook, "_ladis_capture", None)
    if capture is not None:
        return capture.close()
    _close_smdebug_hook(hook)
    return None
