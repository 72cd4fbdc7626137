"""A user's own classifier: ``PKG.MODULE:CALLABLE`` imported from the working folder or
``PYTHONPATH``, optionally loaded with a state dict, behind its recorded preprocessing.

The callable returns an ``nn.Module`` (a class or a factory function both work). Every
way this can go wrong is an :class:`~ladis_core.errors.InputError` of one line naming
the culprit: the module cannot be imported, the name is missing or not callable, the
call fails or returns something else, the weights file is unreadable or does not fit
(missing, unexpected and mis-shaped keys are named).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ladis_core.errors import InputError
from ladis_core.trials.meta import Preprocessing

_TARGET = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<name>[A-Za-z_]\w*)$")
_SHOWN_KEYS = 5


def is_model_target(text: str) -> bool:
    """Whether ``text`` has the ``PKG.MODULE:CALLABLE`` form (not a folder or URI)."""
    return bool(_TARGET.match(str(text).strip()))


@dataclass(frozen=True)
class ImportedSpec:
    """What the endpoint needs of an imported model (the counterpart of
    :class:`~ladis_core.model.spec.ModelSpec`): ``architecture`` is the target
    (``pkg.module:build``), ``input_shape`` (C, H, W) what it is fed."""

    architecture: str
    input_shape: tuple[int, int, int]
    class_names: list[str] = field(default_factory=list)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)


def import_model(target: str) -> nn.Module:
    """Call ``target`` (``PKG.MODULE:CALLABLE``) and return the module it builds."""
    text = str(target).strip()
    match = _TARGET.match(text)
    if match is None:
        raise InputError(
            f"--model {text!r} is not PKG.MODULE:CALLABLE (e.g. mymodels.cnn:build), a model "
            "folder or an s3:// model"
        )
    module_name, name = match.group("module"), match.group("name")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # "imported from the working folder", as python -m does
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(
            f"--model {text}: cannot import {module_name!r} ({exc}); run from the folder that "
            "holds it or add that folder to PYTHONPATH"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise InputError(
            f"--model {text}: importing {module_name!r} failed ({_one_line(exc)})"
        ) from None
    factory = getattr(module, name, None)
    if factory is None:
        raise InputError(f"--model {text}: module {module_name!r} has no {name!r}")
    if not callable(factory):
        raise InputError(f"--model {text}: {name!r} is not callable")
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001 - the user's code failed
        raise InputError(f"--model {text}: calling {name}() failed ({_one_line(exc)})") from None
    if not isinstance(model, nn.Module):
        raise InputError(
            f"--model {text}: {name}() returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def _state_dict(value: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(value, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(value.get(key), dict):
                value = value[key]
                break
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    ):
        raise InputError(
            f"--weights {source} is not a state dict (a mapping of parameter names to tensors, "
            "as torch.save(model.state_dict(), FILE) writes)"
        )
    if value and all(k.startswith("module.") for k in value):  # saved from DataParallel
        value = {k[len("module.") :]: v for k, v in value.items()}
    return value


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else "")


def load_weights(model: nn.Module, weights: str | Path, *, target: str = "") -> nn.Module:
    """Load the state dict in ``weights`` into ``model`` (strictly); returns ``model``."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(f"--weights {weights}: no such file")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors alike
        raise InputError(f"--weights {weights} cannot be read ({_one_line(exc)})") from None
    state = _state_dict(loaded, str(weights))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if mis_shaped:
        problems.append(f"other shapes: {_listed(mis_shaped)}")
    if problems:
        what = target or model._get_name()
        raise InputError(f"--weights {weights} do not fit {what}: {'; '.join(problems)}")
    model.load_state_dict(state)
    return model


class Preprocessed(nn.Module):
    """``model`` behind ``(x - mean) / std``, so it takes [0, 1] pixels and a capture
    records those pixels as its input.

    It shares the model's children (``_modules``) and class name instead of holding the
    model as a child, so module and tensor names stay the model's own (``pool``,
    ``SmallCNN_output_0``): the names a user gives ``--layers`` and ``--penultimate``.
    """

    def __init__(self, model: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        if preprocessing.mean is None or preprocessing.std is None:
            raise InputError("Preprocessed needs a mean and a std")
        object.__setattr__(self, "_ladis_model", model)  # not registered as a child
        self._modules = model._modules
        self._ladis_name = model._get_name()
        self.register_buffer(
            "ladis_mean", torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer(
            "ladis_std", torch.tensor(preprocessing.std, dtype=torch.float32).view(1, -1, 1, 1)
        )

    def _get_name(self) -> str:
        return self._ladis_name

    def _apply(self, fn: Any, recurse: bool = True) -> Preprocessed:
        # the model's own parameters and buffers (a ViT's class token) are not in the
        # shared children: move the model itself, then this wrapper's buffers
        self._ladis_model._apply(fn, recurse)
        for key, buffer in self._buffers.items():
            if buffer is not None:
                self._buffers[key] = fn(buffer)
        return self

    def train(self, mode: bool = True) -> Preprocessed:
        self._ladis_model.train(mode)
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> Any:
        return self._ladis_model((x - self.ladis_mean) / self.ladis_std)


def with_preprocessing(model: nn.Module, preprocessing: Preprocessing) -> nn.Module:
    """``model`` as the capture and the endpoint run it: behind :class:`Preprocessed`
    when the preprocessing normalises, otherwise ``model`` itself."""
    return Preprocessed(model, preprocessing) if preprocessing.normalizes else model


def load_imported(
    target: str,
    *,
    weights: str | Path | None = None,
    preprocessing: Preprocessing | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Import ``target``, load ``weights``, wrap it in ``preprocessing``; eval mode on
    ``device``."""
    model = import_model(target)
    if weights is not None:
        load_weights(model, weights, target=target)
    wrapped = with_preprocessing(model, preprocessing or Preprocessing())
    return wrapped.to(device).eval()
