"""The one rule for layer names in a trial.

smdebug names a tensor after the module that produced it (``avgpool_output_0``,
``layer4.1_output_0``) or took it in (``heads_input_0``), and the top module after its
class (``ResNet_input_0``, ``ResNet_output_0``). A layer may be asked for by tensor name
or by module name.

The penultimate layer and the model's input and output are taken from what the capture
recorded (:class:`~ladis_core.trials.meta.TrialMeta`); only a trial without that record
(one written by another tool) falls back to names: ``avgpool_output_0`` and
``<ModelClass>_output_0``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ladis_core.errors import InputError
from ladis_core.trials.meta import TrialMeta, recorded_layer

PENULTIMATE_PATTERN = re.compile(r"avgpool_output_\d+$")
#: module-name pattern of the outputs of every residual block of a ResNet18 (8 layers)
RESIDUAL_BLOCKS: tuple[str, ...] = (r"layer[1-4]\.[01]",)


def penultimate_layer(names: Sequence[str], meta: TrialMeta | None = None) -> str:
    """The penultimate layer among ``names``: the one the capture recorded in ``meta``;
    without a record, a name ending in ``avgpool_output_0`` (a ResNet's). :class:`InputError`
    listing ``names`` if there is none."""
    recorded = recorded_layer(meta, names)
    if recorded is not None:
        return recorded
    for name in names:
        if PENULTIMATE_PATTERN.search(name):
            return name
    raise InputError(
        "the trial does not record its penultimate layer (no ladis.json) and none of its "
        f"layers is named like one ('avgpool_output_0'): {', '.join(names) or 'no layers'}; "
        "name the layers to use explicitly"
    )


_MODEL_INPUT = re.compile(r"[A-Z][A-Za-z0-9]*_input_\d+")


def _is_input(name: str) -> bool:
    """Whether ``name`` is the model's input (``ResNet_input_0``: the top module is named
    after its class), not a layer such as the input of a sub-module (``heads_input_0``)."""
    return bool(_MODEL_INPUT.fullmatch(name))


def tensor_name(layer: str, available: Iterable[str]) -> str | None:
    """The tensor that ``layer`` names among ``available``: itself when it is a tensor
    name (``avgpool_output_0``), the output of the module it names otherwise
    (``layer4.1`` → ``layer4.1_output_0``); ``None`` when it names neither. Model inputs
    are not layers."""
    names = set(available)
    if layer in names and not _is_input(layer):
        return layer
    if f"{layer}_output_0" in names:
        return f"{layer}_output_0"
    return None


def resolve_common_layers(
    requested: Sequence[str], trials: Sequence[tuple[str, str, Sequence[str]]]
) -> list[str]:
    """Tensor names for ``requested`` layer names, each present (and naming the same
    tensor) in every one of ``trials`` (``(uri, mode, available layer names)``).
    :class:`InputError` for an empty or repeated name, or one a trial lacks (listing
    that trial's layers)."""
    names: list[str] = []
    for layer in requested:
        layer = layer.strip()
        if not layer:
            raise InputError("an empty layer name was given; separate layer names with commas")
        resolved = None
        for uri, mode, available in trials:
            candidate = tensor_name(layer, available)
            if candidate is None:
                raise InputError(
                    f"layer {layer!r} is not in the {mode} trial {uri}; available layers: "
                    f"{', '.join(available) or 'none'}"
                )
            if resolved not in (None, candidate):
                raise InputError(f"layer {layer!r} names different tensors in the two trials")
            resolved = candidate
        if resolved in names:
            raise InputError(f"layer {layer!r} is given twice")
        names.append(resolved)
    return names


def _resolve_layers(
    requested: Sequence[str] | None,
    available: dict[str, Any],
    uri: str,
    meta: TrialMeta | None = None,
) -> list[str]:
    names = [n for n in available if not _is_input(n)]
    if requested is None:
        return [penultimate_layer(names, meta)]
    if isinstance(requested, str):
        requested = [requested]
    resolved = []
    for layer in requested:
        found = tensor_name(layer, available)
        if found is not None:
            resolved.append(found)
        else:
            raise InputError(
                f"layer {layer!r} is not in the trial at {uri}; available layers: {', '.join(names)}"
            )
    if not resolved:
        raise InputError(f"no layer asked for; available layers at {uri}: {', '.join(names)}")
    return list(dict.fromkeys(resolved))


def _output_name(available: dict[str, Any], meta: TrialMeta | None = None) -> str | None:
    """The model output tensor: the one ``meta`` records, else ``<ModelClass>_output_0``
    (smdebug names the top module after its class, ``ResNet``, and sub-modules after
    their attribute names; a loss module such as ``CrossEntropyLoss`` is not the model)."""
    if meta is not None and meta.output in available:
        return meta.output
    if "ResNet_output_0" in available:
        return "ResNet_output_0"
    candidates = [
        n
        for n in available
        if re.fullmatch(r"[A-Z][A-Za-z0-9]*_output_0", n) and not n.endswith("Loss_output_0")
    ]
    if len(candidates) == 1:
        return candidates[0]
    tops = [
        n
        for n in available
        if n.endswith("_output_0") and n[: -len("_output_0")] + "_input_0" in available
    ]
    return tops[0] if len(tops) == 1 else None


def _input_name(
    available: dict[str, Any], output: str | None, meta: TrialMeta | None = None
) -> str | None:
    if meta is not None and meta.input in available:
        return meta.input
    if output:
        name = output[: -len("_output_0")] + "_input_0"
        if name in available:
            return name
    inputs = [n for n in available if n.endswith("_input_0") and _is_input(n)]
    return inputs[0] if len(inputs) == 1 else None
