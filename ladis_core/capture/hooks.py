"""smdebug hooks: which tensors to save, and attaching and detaching a hook.

``layers`` are regular expressions over the model's module names as PyTorch lists them
(``model.named_modules()``), each matching a whole name (``layer[1-4]\\.[01]``,
``layer3.1``), or smdebug-style tensor regexes containing ``_output``
(``.*avgpool_output``). They are resolved against the model when the hook is attached,
so a pattern that matches nothing is an :class:`~ladis_core.errors.InputError` listing
the modules, and the hook then includes exactly those tensor names. The penultimate
layer is always saved: found by a forward pass (:mod:`ladis_core.capture.penultimate`)
or named with ``penultimate=``.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ladis_core.capture.plan import plan_capture

#: the module whose output is the penultimate layer of the demo's ResNet
#: (``avgpool_output_0``); other models' is found by a forward pass (capture/penultimate.py)
PENULTIMATE_MODULE = "avgpool"


_MODES = ("TRAIN", "EVAL", "PREDICT")


@functools.cache
def _smdebug() -> Any:
    """Import smdebug once, quietly (its INFO log lists every parameter of the model)."""
    os.environ.setdefault("SMDEBUG_LOG_LEVEL", "warning")
    import smdebug.pytorch as smd
    from smdebug.core.modes import ModeKeys

    class LadisHook(smd.Hook):
        """smdebug's PyTorch hook without per-parameter gradient hooks (LADIS never
        saves gradients, and those hooks could not be removed again)."""

        def _backward_apply(self, module: nn.Module) -> None:
            return None

    return smd, ModeKeys, LadisHook


def capture_tensor_names(
    model: nn.Module,
    *,
    layers: Sequence[str] = (),
    include_inputs: bool = True,
    penultimate: str | None = None,
    input_shape: Sequence[int] | None = None,
) -> list[str]:
    """The tensor names a capture of ``model`` saves in every step (see the module
    docstring), in forward order as far as module order tells it. The penultimate
    layer is found by a dry forward pass of an input of ``input_shape`` (C, H, W;
    guessed when ``None``) unless ``penultimate`` names its module
    (:func:`ladis_core.capture.plan.plan_capture`)."""
    plan = plan_capture(
        model,
        layers=layers,
        include_inputs=include_inputs,
        penultimate=penultimate,
        input_shape=input_shape,
    )
    return list(plan.tensor_names)


def _new_hook(
    model: nn.Module | None,
    out_dir: Path,
    *,
    mode: str,
    include_regex: Sequence[str],
    save_every: int,
) -> Any:
    smd, mode_keys, hook_class = _smdebug()
    never = {m: smd.SaveConfigMode(start_step=0, end_step=0) for m in mode_keys}
    never[mode_keys[mode]] = smd.SaveConfigMode(save_interval=save_every)
    hook = hook_class(
        out_dir=str(out_dir),
        save_config=smd.SaveConfig(mode_save_configs=never),
        include_regex=list(include_regex),
        include_collections=["default"],
    )
    if model is not None:
        hook.register_module(model)
    hook.set_mode(mode_keys[mode])
    return hook


def _detach(hook: Any, model: nn.Module | None) -> None:
    """Remove ``hook``'s forward hooks from ``model`` (smdebug registers them without
    keeping handles)."""
    if model is None:
        return
    for module in model.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks):
            for key in [k for k, fn in hooks.items() if getattr(fn, "__self__", None) is hook]:
                del hooks[key]
                for extra in (
                    "_forward_hooks_with_kwargs",
                    "_forward_hooks_always_called",
                    "_forward_pre_hooks_with_kwargs",
                ):
                    getattr(module, extra, {}).pop(key, None)


def _close_smdebug_hook(hook: Any) -> None:
    hook.close()
    # smdebug registered hook._cleanup with atexit; after close it would only write a
    # stray end-of-job file (into a staging folder that is gone, or S3 at exit)
    atexit.unregister(hook._cleanup)


def _generic_tensor_patterns(layers: Sequence[str], include_inputs: bool) -> list[str]:
    """Tensor regexes for a hook made without the model (names cannot be checked)."""
    patterns = [
        r"^(?:.*\.)?" + re.escape(PENULTIMATE_MODULE) + r"_output_0$",
        r"^[A-Z][A-Za-z0-9]*_output_0$",
    ]
    for layer in layers:
        patterns.append(
            layer if ("_output" in layer or "_input" in layer) else f"^(?:{layer})_output_0$"
        )
    if include_inputs:
        patterns.append(r"^[A-Z][A-Za-z0-9]*_input_0$")
    return patterns
