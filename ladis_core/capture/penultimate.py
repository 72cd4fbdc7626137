"""The penultimate layer of any PyTorch classifier, found by a dry forward pass.

The penultimate layer is the input of the module that produces the logits (the final
``Linear`` of a ResNet, the ``classifier`` of a MobileNet or EfficientNet, the ``heads``
of a ViT). It is found from the data flow, never from module names:

1. forward hooks on every module record, for one forward pass of a small example batch
   (eval mode, no gradients), the order of calls and what went in and came out;
2. the *head* is the outermost module (other than the model itself) whose output is the
   logits tensor, leaving out modules that also ran the first layer of the network
   (a wrapper around the whole classifier);
3. the penultimate tensor is the head's first input. When that tensor is the output of
   an earlier module (the same storage and size, e.g. ``avgpool`` followed by
   ``torch.flatten``), the layer is named after that module's output
   (``avgpool_output_0``), otherwise after the head's input (``heads_input_0``): the
   names smdebug gives those tensors.

Nothing here imports smdebug, so any capture writer can reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ladis_core.errors import InputError

#: spatial sizes tried, in order, when a model is probed without a known input shape
PROBE_SIZES = (32, 28, 64, 16, 96, 128, 224, 299, 8)


@dataclass(frozen=True)
class Penultimate:
    """Where a classifier's penultimate layer is.

    ``tensor``: its smdebug tensor name (``avgpool_output_0``, ``heads_input_0``);
    ``module``: the module whose output (``kind == "output"``) or input
    (``kind == "input"``) it is; ``head``: the module producing the logits (empty when
    given by hand); ``shape``: the tensor's shape for one sample; ``input_shape``: the
    (C, H, W) of the probe.
    """

    tensor: str
    module: str
    kind: str
    head: str
    shape: tuple[int, ...]
    input_shape: tuple[int, int, int]
    detected: bool = True


@dataclass
class _Call:
    order: int  # position of the pre-hook call
    name: str
    done: int = -1  # position of the post-hook call
    inputs: tuple[Any, ...] = ()
    output: Any = None


def _module_names(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules()}


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


def _logits_of(output: Any, top: str) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        logits = output
    elif isinstance(output, dict) and isinstance(output.get("logits"), torch.Tensor):
        logits = output["logits"]
    else:
        logits = _first_tensor(output)
    if logits is None or logits.ndim != 2:
        shape = getattr(logits, "shape", type(output).__name__)
        raise InputError(
            f"{top} does not return logits of shape (batch, classes) (it returned {shape}); "
            "LADIS monitors image classifiers"
        )
    return logits


def _same_data(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (
        a.numel() == b.numel() and a.dtype == b.dtype and a.data_ptr() == b.data_ptr()
    )


def _run(model: nn.Module, example: torch.Tensor) -> tuple[list[_Call], Any]:
    """Calls of every sub-module during one forward pass of ``example``, in call order."""
    names = _module_names(model)
    calls: list[_Call] = []
    open_calls: dict[int, list[_Call]] = {}
    counter = [0]

    def pre(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        call = _Call(order=counter[0], name=names.get(id(module), ""), inputs=inputs)
        counter[0] += 1
        calls.append(call)
        open_calls.setdefault(id(module), []).append(call)

    def post(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        call = open_calls[id(module)].pop()
        call.done, call.output = counter[0], output
        counter[0] += 1

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            output = model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return calls, output


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _example(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"input_shape={shape} must be (channels, height, width)")
    generator = torch.Generator().manual_seed(0)
    return torch.rand((2, *shape), generator=generator).to(_device_of(model))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def probe(model: nn.Module, input_shape: Sequence[int]) -> tuple[list[_Call], torch.Tensor]:
    """One dry forward pass of a (2, C, H, W) batch; :class:`InputError` when the model
    does not accept it or does not return logits."""
    top = model._get_name()
    try:
        calls, output = _run(model, _example(model, input_shape))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of user code is bad input here
        raise InputError(
            f"{top} does not accept input of shape (N, {', '.join(str(v) for v in input_shape)}) "
            f"({_describe(exc)}); give the input shape it expects"
        ) from None
    return calls, _logits_of(output, top)


def guess_input_shape(model: nn.Module) -> tuple[int, int, int]:
    """An input shape (C, H, W) the model accepts: C from its first convolution or
    linear layer (3 otherwise), H = W from :data:`PROBE_SIZES`."""
    channels = 3
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            channels = int(module.in_channels)
            break
    for size in PROBE_SIZES:
        try:
            probe(model, (channels, size, size))
        except InputError:
            continue
        return (channels, size, size)
    raise InputError(
        f"{model._get_name()} accepts none of the image sizes tried "
        f"({', '.join(str(s) for s in PROBE_SIZES)}, {channels} channels); give its input shape"
    )


def find_penultimate(model: nn.Module, *, input_shape: Sequence[int] | None = None) -> Penultimate:
    """The penultimate layer of ``model`` (see the module docstring), from one dry
    forward pass of a batch of shape (2, *input_shape*) (guessed when ``None``).

    :class:`InputError` when the model fails on that input, returns no logits, or no
    sub-module produces the logits (a model whose last step is a plain function)."""
    shape = tuple(input_shape) if input_shape is not None else guess_input_shape(model)
    calls, logits = probe(model, shape)
    top = model._get_name()
    first = min((c.order for c in calls), default=-1)
    heads = [
        c
        for c in calls
        if c.name
        and _first_tensor(c.output) is logits
        # a module that also ran the first layer wraps the whole network: not the head
        and not (c.order <= first <= c.done)
    ]
    if not heads:
        raise InputError(
            f"no sub-module of {top} produces its logits (the last step of forward is not a "
            "module call); name the penultimate module by hand"
        )
    head = min(heads, key=lambda c: c.order)  # the outermost
    features = _first_tensor(head.inputs)
    if features is None:
        raise InputError(f"the head {head.name!r} of {top} takes no tensor input")
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.name] = counts.get(call.name, 0) + 1
    producers = [
        c
        for c in calls
        if c.done < head.order
        and counts[c.name] == 1
        and (out := _first_tensor(c.output)) is not None
        and _same_data(out, features)
    ]
    per_sample = tuple(int(v) for v in features.shape[1:])
    if producers:
        producer = min(producers, key=lambda c: c.done)  # the one that made it
        return Penultimate(
            tensor=f"{producer.name}_output_0",
            module=producer.name,
            kind="output",
            head=head.name,
            shape=tuple(int(v) for v in _first_tensor(producer.output).shape[1:]),  # type: ignore[union-attr]
            input_shape=shape,  # type: ignore[arg-type]
        )
    return Penultimate(
        tensor=f"{head.name}_input_0",
        module=head.name,
        kind="input",
        head=head.name,
        shape=per_sample,
        input_shape=shape,  # type: ignore[arg-type]
    )


def named_penultimate(
    model: nn.Module, module: str, *, input_shape: Sequence[int] | None = None
) -> Penultimate:
    """The output of the module named ``module`` as the penultimate layer (an override);
    :class:`InputError` listing the module names when there is no such module."""
    names = [name for name, _ in model.named_modules() if name]
    if module not in names:
        shown = ", ".join(names[:60]) + (" …" if len(names) > 60 else "")
        raise InputError(
            f"the penultimate module {module!r} is not a module of {model._get_name()}; "
            f"module names: {shown}"
        )
    shape = tuple(input_shape) if input_shape is not None else guess_input_shape(model)
    calls, _ = probe(model, shape)
    runs = [c for c in calls if c.name == module]
    if len(runs) != 1 or _first_tensor(runs[0].output) is None:
        raise InputError(
            f"module {module!r} of {model._get_name()} runs {len(runs)} times in a forward "
            "pass (or returns no tensor); choose a module that runs once"
        )
    out = _first_tensor(runs[0].output)
    return Penultimate(
        tensor=f"{module}_output_0",
        module=module,
        kind="output",
        head="",
        shape=tuple(int(v) for v in out.shape[1:]),  # type: ignore[union-attr]
        input_shape=shape,  # type: ignore[arg-type]
        detected=False,
    )
