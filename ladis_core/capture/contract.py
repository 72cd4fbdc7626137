"""Hooks for training and serving scripts that manage an smdebug hook themselves, and
the layer record for a trial that another hook writes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from ladis_core.capture.hooks import _close_smdebug_hook
from ladis_core.capture.plan import plan_capture
from ladis_core.capture.publishing import _check_target
from ladis_core.capture.reference import EvalCapture
from ladis_core.capture.staging import CaptureSummary, _StagedCapture
from ladis_core.trials.meta import Preprocessing, write_trial_meta


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


def describe_trial(
    model: nn.Module,
    out: str,
    *,
    input_shape: Sequence[int],
    layers: Sequence[str] = (),
    include_inputs: bool = True,
    penultimate: str | None = None,
    preprocessing: Preprocessing | None = None,
    class_names: Sequence[str] = (),
) -> list[str]:
    """For a script that keeps its own smdebug hook (a SageMaker training job, several
    workers, any ``save_interval`` and collections): find ``model``'s penultimate layer,
    record it with the input and output tensors, ``preprocessing`` and ``class_names`` in
    ``out``'s ``ladis.json``, and return the ``include_regex`` to give the hook so it saves
    those tensors. Readers and the monitoring job then need no layer names::

        regex = describe_trial(model, "s3://b/trials/ep/reference", input_shape=(3, 64, 64))
        hook = smd.Hook(out_dir=..., include_regex=regex, include_workers="all", ...)
    """
    plan = plan_capture(
        model,
        layers=layers,
        include_inputs=include_inputs,
        penultimate=penultimate,
        input_shape=input_shape,
    )
    meta = plan.meta(model, preprocessing=preprocessing, class_names=class_names)
    write_trial_meta(_check_target(out), meta)
    return [f"^{re.escape(name)}$" for name in plan.tensor_names]
