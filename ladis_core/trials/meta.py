"""What a capture records beside its trial: which tensor is the penultimate layer, which
are the model's input and output, the preprocessing and the class names.

``<trial>/ladis.json`` (:data:`META_NAME`), written by LADIS's captures when they start
(or by :func:`ladis_core.capture.describe_trial` beside a trial that another hook
writes). Readers and the monitoring job take the penultimate layer from here instead of
guessing it from tensor names; smdebug's own reader ignores the file.

The file is untrusted like everything read from storage: it is bounded in size, every
field is type-checked, and tensor names must look like tensor names; a file that fails
is ignored with a warning (readers then fall back to the name rule of
:mod:`ladis_core.trials.names`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ladis_core import store
from ladis_core.errors import DataNotFoundError, InputError, LadisError
from ladis_core.store import layout

log = logging.getLogger(__name__)

META_NAME = "ladis.json"
META_FORMAT = 1
#: larger files are not read (a class list of 10,000 names fits easily)
MAX_META_BYTES = 1 << 20
MAX_CLASS_NAMES = 10_000
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


@dataclass(frozen=True)
class Preprocessing:
    """How images become model input: resized to ``image_size`` (H, W) (``None``: as
    they come), then ``(x - mean) / std`` per channel (``None``: the model takes pixels
    in [0, 1] as they are). Recorded inputs are always the [0, 1] pixels."""

    image_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise InputError(f"image size {self.image_size} must be two positive numbers (H W)")
        if (self.mean is None) != (self.std is None):
            raise InputError("give both mean and std, or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise InputError(f"std {self.std} must be positive")
        if self.mean is not None and len(self.mean) != len(self.std or ()):
            raise InputError(f"mean {self.mean} and std {self.std} need as many values")

    @property
    def normalizes(self) -> bool:
        return self.mean is not None


@dataclass(frozen=True)
class TrialMeta:
    """The contents of ``ladis.json`` (see the module docstring).

    ``penultimate``: the penultimate tensor (``avgpool_output_0``); ``penultimate_module``
    and ``head``: the module it comes from and the module producing the logits;
    ``detected``: found by the forward pass (``False``: named by hand); ``output`` /
    ``input``: the model's output and input tensors; ``tensors``: every tensor a step
    holds; ``input_shape``: (C, H, W) of the model input.
    """

    penultimate: str
    output: str
    input: str | None = None
    penultimate_module: str = ""
    head: str = ""
    detected: bool = True
    tensors: tuple[str, ...] = ()
    input_shape: tuple[int, ...] = ()
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    class_names: tuple[str, ...] = ()
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = META_FORMAT
        return json.loads(json.dumps(data))  # tuples as lists, as the file holds them

    @classmethod
    def from_dict(cls, data: Any, *, source: str = META_NAME) -> TrialMeta:
        """Check and build; :class:`InputError` naming ``source`` when malformed."""
        try:
            if not isinstance(data, dict) or data.get("format") != META_FORMAT:
                raise ValueError(f"not a format-{META_FORMAT} object")
            pre = data.get("preprocessing") or {}
            if not isinstance(pre, dict):
                raise ValueError("preprocessing is not an object")
            names = data.get("class_names") or []
            if not isinstance(names, list) or len(names) > MAX_CLASS_NAMES:
                raise ValueError("class_names is not a list of at most 10,000 names")
            return cls(
                penultimate=_tensor(data["penultimate"]),
                output=_tensor(data["output"]),
                input=None if data.get("input") is None else _tensor(data["input"]),
                penultimate_module=_text(data.get("penultimate_module", "")),
                head=_text(data.get("head", "")),
                detected=bool(data.get("detected", True)),
                tensors=tuple(_tensor(t) for t in _list(data.get("tensors"), 10_000)),
                input_shape=tuple(_whole(v) for v in _list(data.get("input_shape"), 3)),
                preprocessing=Preprocessing(
                    image_size=_pair(pre.get("image_size")),
                    mean=_floats(pre.get("mean")),
                    std=_floats(pre.get("std")),
                ),
                class_names=tuple(_text(n) for n in names),
                model=_text(data.get("model", "")),
            )
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise InputError(f"{source} is not a LADIS trial description ({exc})") from None


def _list(value: Any, limit: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise ValueError(f"expected a list of at most {limit} items, got {type(value).__name__}")
    return value


def _tensor(value: Any) -> str:
    if not isinstance(value, str) or not _TENSOR_NAME.match(value):
        raise ValueError(f"{str(value)[:60]!r} is not a tensor name")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ValueError("expected a text of at most 200 characters")
    return value


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1_000_000:
        raise ValueError(f"{value!r} is not a size")
    return value


def _pair(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    items = _list(value, 2)
    if len(items) != 2:
        raise ValueError("image_size needs two numbers")
    return (_whole(items[0]), _whole(items[1]))


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    items = _list(value, 16)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        raise ValueError("mean/std must be numbers")
    return tuple(float(v) for v in items)


def meta_uri(trial: str) -> str:
    return layout.join(trial, META_NAME)


def write_trial_meta(trial: str, meta: TrialMeta) -> str:
    """Write ``ladis.json`` of the trial at ``trial`` (replacing an older one: it
    describes the capture writing now). Returns its URI."""
    uri = meta_uri(trial)
    store.write_bytes(
        uri,
        json.dumps(meta.to_dict(), indent=2).encode(),
        content_type="application/json",
    )
    return uri


def read_trial_meta(trial: str) -> TrialMeta | None:
    """The trial's ``ladis.json``, or ``None`` when there is none or it is unusable (a
    warning says why); a store that cannot be reached still raises."""
    uri = meta_uri(trial)
    try:
        data = store.read_bytes(uri)
    except DataNotFoundError:
        return None
    if len(data) > MAX_META_BYTES:
        log.warning("%s is larger than %d bytes; ignored", uri, MAX_META_BYTES)
        return None
    try:
        return TrialMeta.from_dict(json.loads(data), source=uri)
    except (ValueError, UnicodeDecodeError, LadisError) as exc:
        log.warning("%s ignored: %s", uri, exc)
        return None


def recorded_layer(meta: TrialMeta | None, names: Sequence[str]) -> str | None:
    """The penultimate tensor ``meta`` names, when the trial holds it."""
    if meta is not None and meta.penultimate in names:
        return meta.penultimate
    return None
