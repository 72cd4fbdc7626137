"""Copying the tensors a capture saves out of a forward pass, with plain PyTorch hooks.

A :class:`LayerTap` puts a forward hook (or, for a layer that is a module's input, a
forward pre-hook) on each module a :class:`~ladis_core.capture.plan.CapturePlan` names.
A hook only copies its tensor, detached, and only for forward passes that the calling
thread runs inside :meth:`LayerTap.collect`; everything else (numpy conversion,
serialisation, files, uploads) happens later in the capture's writer thread.

**No copy where none is needed.** A module's output is usually never touched again
by the model, so the tap keeps a reference (the forward pass allocated it; nothing
reuses it while it is held) and checks its version counter once the forward pass is
over. A tensor the model changes in place later (the output of a ``BatchNorm`` that a
``ReLU(inplace=True)`` follows) is learnt at the first request, which copies every
tensor; such tensors are cloned from then on. Should a tensor kept without a copy
change anyway (a data-dependent in-place path), the step is refused by
:meth:`LayerTap.settle` rather than saved wrong.

On a GPU the values go to pinned host memory on a side CUDA stream, so the request's
own stream never waits for them; the writer waits for the copy's event before reading.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ladis_core.capture.penultimate import _first_tensor
from ladis_core.capture.plan import CapturePlan, split_tensor_name


@dataclass(frozen=True)
class CopiedTensor:
    """A tensor copied off the request path: ``host`` on the CPU, valid once ``ready``
    (a CUDA event; ``None`` for a CPU copy) has completed."""

    host: torch.Tensor
    ready: Any = None

    @property
    def nbytes(self) -> int:
        return self.host.numel() * self.host.element_size()

    def numpy(self) -> np.ndarray:
        """The values (waits for a GPU copy to land); bfloat16 becomes float32, which
        smdebug's format can hold."""
        if self.ready is not None:
            self.ready.synchronize()
        host = self.host if self.host.dtype != torch.bfloat16 else self.host.float()
        return host.numpy()


_side_streams: dict[torch.device, Any] = {}
_side_streams_lock = threading.Lock()


def _side_stream(device: torch.device) -> Any:
    with _side_streams_lock:
        if device not in _side_streams:
            _side_streams[device] = torch.cuda.Stream(device=device)
        return _side_streams[device]


def copy_off(tensor: torch.Tensor, *, clone: bool = True) -> CopiedTensor:
    """``tensor``'s values for the writer without the request waiting for them (see the
    module): a clone (or, with ``clone=False``, the tensor itself) on the CPU; an
    asynchronous copy to pinned memory from a GPU."""
    value = tensor.detach()
    if value.device.type != "cuda":
        value = value.to("cpu")
        return CopiedTensor(value.clone(memory_format=torch.contiguous_format) if clone else value)
    if clone:
        value = value.clone()  # on the device, in the request's stream: cheap
    stream = _side_stream(value.device)
    stream.wait_stream(torch.cuda.current_stream(value.device))
    with torch.cuda.stream(stream):
        host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        host.copy_(value, non_blocking=True)
        value.record_stream(stream)  # the allocator must not reuse it before the copy ran
        ready = torch.cuda.Event()
        ready.record(stream)
    return CopiedTensor(host, ready)


def _version(tensor: torch.Tensor) -> int | None:
    """The in-place version counter (``None`` for inference-mode tensors, which have none)."""
    try:
        return int(tensor._version)
    except RuntimeError:
        return None


@dataclass(frozen=True)
class _Kept:
    copy: CopiedTensor
    source: torch.Tensor
    version: int | None
    cloned: bool


class LayerTap:
    """Hooks on ``model`` copying the plan's intermediate tensors (every name but the
    model's own input and output, which the capture takes from the call itself)."""

    def __init__(self, model: nn.Module, plan: CapturePlan) -> None:
        self._local = threading.local()
        self._handles: list[Any] = []
        self._checked: set[str] = set()  # names seen through a whole forward pass
        self._mutated: set[str] = set()  # names the model changes in place after the hook
        modules = dict(model.named_modules())
        for name in plan.tensor_names:
            if name in (plan.input, plan.output):
                continue
            module_name, side = split_tensor_name(name)
            module = modules[module_name]
            if side == "output":
                hook = functools.partial(self._on_output, name)
                self._handles.append(module.register_forward_hook(hook))
            else:
                hook = functools.partial(self._on_input, name)
                self._handles.append(module.register_forward_pre_hook(hook))

    @contextlib.contextmanager
    def collect(self) -> Iterator[dict[str, _Kept]]:
        """What the forward passes of this thread produce inside the block, by tensor
        name (a module called twice keeps its first call); give it to :meth:`settle`."""
        seen: dict[str, _Kept] = {}
        self._local.seen = seen
        try:
            yield seen
        finally:
            self._local.seen = None

    def _keep(self, name: str, value: Any) -> None:
        seen = getattr(self._local, "seen", None)
        tensor = _first_tensor(value)
        if seen is None or tensor is None or name in seen:
            return
        tensor = tensor.detach()
        version = _version(tensor)
        clone = version is None or name in self._mutated or name not in self._checked
        seen[name] = _Kept(copy_off(tensor, clone=clone), tensor, version, clone)

    def settle(self, seen: dict[str, _Kept]) -> dict[str, CopiedTensor] | None:
        """After the forward pass: the tensors by name, or ``None`` when one kept
        without a copy was changed in place meanwhile (the step would be wrong). Learns
        which tensors the model changes in place, to clone them from the next pass on."""
        intact = True
        for name, kept in seen.items():
            changed = kept.version is not None and _version(kept.source) != kept.version
            if changed:
                self._mutated.add(name)
                intact = intact and kept.cloned
            self._checked.add(name)
        return {name: kept.copy for name, kept in seen.items()} if intact else None

    def _on_output(self, name: str, _module: nn.Module, _inputs: Any, output: Any) -> None:
        self._keep(name, output)

    def _on_input(self, name: str, _module: nn.Module, inputs: Any) -> None:
        self._keep(name, inputs)

    def remove(self) -> None:
        """Take every hook off the model (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
