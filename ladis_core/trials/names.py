"""The one rule for layer names in a trial.

smdebug names a tensor after the module that produced it (``avgpool_output_0``,
``layer4.1_output_0``) and the top module after its class (``ResNet_input_0``,
``ResNet_output_0``). A layer may be asked for by tensor name or by module name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ladis_core.errors import InputError

PENULTIMATE_PATTERN = re.compile(r"avgpool_output_\d+$")
#: module-name pattern of the outputs of every residual block of a ResNet18 (8 layers)
RESIDUAL_BLOCKS: tuple[str, ...] = (r"layer[1-4]\.[01]",)


def penultimate_layer(names: Sequence[str]) -> str:
    """The penultimate layer among ``names``: the ``avgpool`` output of a ResNet
    (``avgpool_output_0``). :class:`InputError` listing ``names`` if there is none."""
    for name in names:
        if PENULTIMATE_PATTERN.search(name):
            return name
    raise InputError(
        f"no penultimate layer (a name ending in 'avgpool_output_0') among {', '.join(names) or 'no layers'}; "
        "name the layers to use explicitly"
    )


def _is_input(name: str) -> bool:
    return "_input_" in name


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
    requested: Sequence[str] | None, available: dict[str, Any], uri: str
) -> list[str]:
    names = [n for n in available if not _is_input(n)]
    if requested is None:
        return [penultimate_layer(names)]
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


def _output_name(available: dict[str, Any]) -> str | None:
    """The model output tensor, ``<ModelClass>_output_0``: smdebug names the top module
    after its class (``ResNet``) and sub-modules after their attribute names."""
    if "ResNet_output_0" in available:
        return "ResNet_output_0"
    candidates = [n for n in available if re.fullmatch(r"[A-Z][A-Za-z0-9]*_output_0", n)]
    if len(candidates) == 1:
        return candidates[0]
    tops = [
        n
        for n in available
        if n.endswith("_output_0") and n[: -len("_output_0")] + "_input_0" in available
    ]
    return tops[0] if len(tops) == 1 else None


def _input_name(available: dict[str, Any], output: str | None) -> str | None:
    if output:
        name = output[: -len("_output_0")] + "_input_0"
        if name in available:
            return name
    inputs = [n for n in available if n.endswith("_input_0") and "." not in n]
    return inputs[0] if len(inputs) == 1 else None
