"""What a capture of a model saves in every step, decided before the first step: the
model's input and output, the penultimate layer (found by a forward pass, or named) and
the chosen intermediate layers; and the :class:`~ladis_core.trials.TrialMeta` recorded
beside the trial. No smdebug here, so any capture writer can use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from ladis_core.capture.penultimate import (
    Penultimate,
    _first_tensor,
    find_penultimate,
    named_penultimate,
    probe,
)
from ladis_core.errors import InputError
from ladis_core.trials.meta import Preprocessing, TrialMeta

_TENSOR_SUFFIX = re.compile(r"_(output|input)_0$")


@dataclass(frozen=True)
class CapturePlan:
    """The tensors a capture saves: ``tensor_names`` in forward order (model input
    first when included, model output last) and where the penultimate layer is."""

    tensor_names: tuple[str, ...]
    penultimate: Penultimate
    output: str
    input: str | None

    def meta(
        self,
        model: nn.Module,
        *,
        preprocessing: Preprocessing | None = None,
        class_names: Sequence[str] = (),
        description: str = "",
    ) -> TrialMeta:
        """The ``ladis.json`` of a trial captured with this plan."""
        return TrialMeta(
            penultimate=self.penultimate.tensor,
            output=self.output,
            input=self.input,
            penultimate_module=self.penultimate.module,
            head=self.penultimate.head,
            detected=self.penultimate.detected,
            tensors=self.tensor_names,
            input_shape=tuple(self.penultimate.input_shape),
            preprocessing=preprocessing or Preprocessing(),
            class_names=tuple(str(n) for n in class_names),
            model=description or model._get_name(),
        )


def split_tensor_name(tensor_name: str) -> tuple[str, str]:
    """``layer1.0_output_0`` → (``layer1.0``, ``output``): the module a tensor name of a
    plan belongs to, and whether it is that module's input or output."""
    match = _TENSOR_SUFFIX.search(tensor_name)
    if match is None:
        raise ValueError(f"{tensor_name!r} is not a module's input or output tensor")
    return tensor_name[: match.start()], match.group(1)


def _matching_modules(pattern: str, module_names: Sequence[str], top: str) -> list[str]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"layer pattern {pattern!r} is not a regular expression ({exc})") from None
    if "_output" in pattern or "_input" in pattern:
        hits = [n for n in module_names if regex.search(f"{n}_output_0")]
    else:
        hits = [n for n in module_names if regex.fullmatch(n)]
    if not hits:
        shown = ", ".join(module_names[:60]) + (" …" if len(module_names) > 60 else "")
        raise InputError(
            f"layer pattern {pattern!r} matches no module of {top}; module names: {shown}"
        )
    return hits


def locate_penultimate(
    model: nn.Module,
    *,
    penultimate: str | None = None,
    input_shape: Sequence[int] | None = None,
) -> Penultimate:
    """The penultimate layer: found by a forward pass when ``penultimate`` is ``None``,
    else the output of the module it names (a module name, or a tensor name such as
    ``avgpool_output_0``)."""
    if penultimate is None:
        return find_penultimate(model, input_shape=input_shape)
    module = _TENSOR_SUFFIX.sub("", str(penultimate).strip())
    return named_penultimate(model, module, input_shape=input_shape)


def plan_capture(
    model: nn.Module,
    *,
    layers: Sequence[str] = (),
    include_inputs: bool = True,
    penultimate: str | None = None,
    input_shape: Sequence[int] | None = None,
) -> CapturePlan:
    """The tensors a capture of ``model`` saves (see :mod:`ladis_core.capture.hooks` for
    ``layers``); ``input_shape`` (C, H, W) is what the dry forward pass uses (guessed
    when ``None``)."""
    top = model._get_name()
    found = locate_penultimate(model, penultimate=penultimate, input_shape=input_shape)
    module_names = [name for name, _ in model.named_modules() if name]
    chosen: set[str] = set()
    for pattern in layers:
        chosen.update(_matching_modules(pattern, module_names, top))
    if found.kind == "output":
        chosen.add(found.module)
    names = [f"{n}_output_0" for n in module_names if n in chosen]
    if found.kind == "input":
        names.append(found.tensor)
    output = f"{top}_output_0"
    names.append(output)
    model_input = f"{top}_input_0" if include_inputs else None
    if model_input is not None:
        names.insert(0, model_input)
    return CapturePlan(
        tensor_names=tuple(names), penultimate=found, output=output, input=model_input
    )


def tensor_shapes(
    model: nn.Module, names: Sequence[str], input_shape: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    """The per-input shape of each of ``names`` (tensor names of a plan), from one dry
    forward pass of an input of ``input_shape`` (C, H, W)."""
    calls, logits = probe(model, input_shape)
    top = model._get_name()
    found: dict[str, tuple[int, ...]] = {
        f"{top}_input_0": tuple(int(v) for v in input_shape),
        f"{top}_output_0": tuple(int(v) for v in logits.shape[1:]),
    }
    for call in calls:
        for tensor, value in (
            (f"{call.name}_output_0", call.output),
            (f"{call.name}_input_0", call.inputs),
        ):
            value = _first_tensor(value)
            if tensor in names and tensor not in found and value is not None:
                found[tensor] = tuple(int(v) for v in value.shape[1:])
    return {name: found[name] for name in names if name in found}
