"""The SageMaker serving contract for the watched classifier, and the model behind it.

SageMaker's PyTorch containers (through the ``sagemaker-inference`` toolkit) import this
module and call, per request::

    model = model_fn(model_dir)                       # once per worker
    data = input_fn(request_body, content_type)       # bytes → images (N, C, H, W)
    prediction = predict_fn(data, model)               # → Prediction (one capture step)
    body, content_type = output_fn(prediction, accept) # → JSON

The toolkit counts each function's parameters to decide whether to pass its ``context``,
so these four take exactly the parameters above and nothing else. Importing this module
has no side effects and loads neither torch nor smdebug; they are imported on first use.

The local HTTP server (:mod:`ladis_core.server`) calls the same functions, so what runs
locally is what would run on SageMaker. On SageMaker, inference capture is switched on
by the environment variable ``LADIS_CAPTURE_URI`` (an ``s3://`` prefix for the PREDICT
trial); ``LADIS_CAPTURE_LAYERS`` (comma-separated regexes) adds intermediate layers.

Accepted request bodies (``input_fn``):

- ``application/x-npy``: one ``.npy`` array of shape (C, H, W) or (N, C, H, W), channel
  first; floats in [0, 1], or integers as 0–255 pixel values.
- ``image/png``, ``image/jpeg``: one image (decoded by Pillow).
- ``application/json``: a nested list of the same shapes as ``.npy``, bare or as
  ``{"instances": …}`` / ``{"inputs": …}``.

Images of another size or channel count are resized (bilinear, antialiased) and
channel-converted to the model's ``spec.input_shape`` in ``predict_fn``. The answer is
``{"predictions": [{"predicted_class", "class_name", "probabilities"}], "step"}`` where
``step`` is the capture step that recorded the request (``null`` without capture).
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ladis_core.errors import InputError, LadisError

if TYPE_CHECKING:  # only for annotations: importing this module must stay light
    import numpy as np
    import torch

    from ladis_core.models import ModelSpec

log = logging.getLogger("ladis.serving")

NPY_TYPE = "application/x-npy"
PNG_TYPE = "image/png"
JPEG_TYPE = "image/jpeg"
JSON_TYPE = "application/json"
SUPPORTED_CONTENT_TYPES = (NPY_TYPE, PNG_TYPE, JPEG_TYPE, JSON_TYPE)
#: aliases some clients send for the same formats
_CONTENT_TYPE_ALIASES = {
    "image/jpg": JPEG_TYPE,
    "image/pjpeg": JPEG_TYPE,
    "application/npy": NPY_TYPE,
}
_ACCEPTED_RESPONSE_TYPES = ("", "*/*", "application/*", JSON_TYPE)

#: one decoded image may have at most this many pixels (a tiny PNG can inflate to
#: gigabytes; Pillow's own bomb limit of ~179 Mpx is far too generous for a server)
MAX_IMAGE_PIXELS = 4096 * 4096
#: at most this many images in one request (each request is one capture step)
MAX_BATCH = 512
#: values this far outside [0, 1] are rounding noise from a client's conversion, not errors
_RANGE_TOLERANCE = 1e-4

CAPTURE_URI_ENV = "LADIS_CAPTURE_URI"
CAPTURE_LAYERS_ENV = "LADIS_CAPTURE_LAYERS"
DEVICE_ENV = "LADIS_DEVICE"


class UnsupportedContentTypeError(InputError):
    """The request's ``Content-Type`` is not one the endpoint decodes (HTTP 415)."""

    status = 415


class NotAcceptableError(InputError):
    """The request's ``Accept`` asks for a response type the endpoint cannot write (406)."""

    status = 406


class EndpointClosedError(LadisError):
    """The endpoint was shut down; the request was not run (HTTP 503)."""

    status = 503


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Prediction:
    """The model's answer to one request (one capture step).

    ``probabilities``: float32 ndarray of shape (N, num_classes) (softmax of the logits);
    ``predicted_class``: int64 ndarray of shape (N,); ``class_names``: the spec's names
    (may be empty); ``step``: the capture step that recorded the request, or ``None``.
    """

    probabilities: np.ndarray
    predicted_class: np.ndarray
    class_names: tuple[str, ...]
    step: int | None

    def __len__(self) -> int:
        return int(self.predicted_class.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer: ``{"predictions": [...], "step": int | None}``."""
        predictions = []
        for row, cls in zip(self.probabilities, self.predicted_class, strict=True):
            cls = int(cls)
            name = self.class_names[cls] if cls < len(self.class_names) else None
            predictions.append(
                {
                    "predicted_class": cls,
                    "class_name": name,
                    "probabilities": [float(p) for p in row],
                }
            )
        return {"predictions": predictions, "step": self.step}


# --------------------------------------------------------------------------- decoding


def normalize_content_type(content_type: str | None) -> str:
    """``"Image/PNG; charset=x"`` → ``"image/png"`` (parameters dropped, aliases mapped)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return _CONTENT_TYPE_ALIASES.get(base, base)


def decode_request(
    body: bytes | bytearray | memoryview | str, content_type: str | None
) -> np.ndarray:
    """Decode a request body into images.

    Returns a float32 ndarray of shape (N, C, H, W) with values in [0, 1], at the size and
    channel count of the payload (:func:`conform_images` adapts it to a model). Raises
    :class:`UnsupportedContentTypeError` for a type it does not decode and
    :class:`~ladis_core.errors.InputError` for a body that is not what its type says.
    """
    kind = normalize_content_type(content_type)
    if kind not in SUPPORTED_CONTENT_TYPES:
        shown = kind or "(none)"
        raise UnsupportedContentTypeError(
            f"Content-Type {shown!r} is not supported; send one of {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    if isinstance(body, str):
        body = body.encode("utf-8")
    body = bytes(body)
    if not body:
        raise InputError("the request body is empty; send an image or an .npy array")
    if kind == NPY_TYPE:
        return _pixels_to_unit(_load_npy(body), source="the .npy array")
    if kind == JSON_TYPE:
        return _pixels_to_unit(_load_json_array(body), source="the JSON array")
    return _load_image(body, "PNG" if kind == PNG_TYPE else "JPEG")


def _load_npy(body: bytes) -> np.ndarray:
    import numpy as np

    stream = io.BytesIO(body)
    try:
        major, minor = np.lib.format.read_magic(stream)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise InputError(f"the body is not a valid .npy array ({_short(exc)})") from None
    if dtype.kind not in "fiub":
        raise InputError(f"the .npy array has dtype {dtype}; send floats in [0, 1] or uint8 0–255")
    # read the header first: np.load allocates the declared shape before reading, so a
    # forged header could otherwise ask for terabytes
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count * dtype.itemsize != len(body) - stream.tell():
        raise InputError(
            f"the .npy header declares shape {tuple(shape)} of {dtype} but the body holds "
            f"{len(body) - stream.tell()} data bytes; the file is truncated or corrupt"
        )
    array = np.frombuffer(body, dtype=dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C")


def _load_json_array(body: bytes) -> np.ndarray:
    import numpy as np

    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"the body is not valid JSON ({_short(exc)})") from None
    if isinstance(value, dict):
        key = next((k for k in ("instances", "inputs") if k in value), None)
        if key is None:
            raise InputError('a JSON body must be a nested list or {"instances": [...]}')
        value = value[key]
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"the JSON array is ragged or not numeric ({_short(exc)})") from None
    if array.dtype.kind not in "fiub":
        raise InputError("the JSON array must hold numbers only")
    return array


def _pixels_to_unit(array: np.ndarray, *, source: str) -> np.ndarray:
    """(C, H, W) or (N, C, H, W) floats in [0, 1] / integers 0–255 → float32 (N, C, H, W)."""
    import numpy as np

    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise InputError(f"{source} has shape {array.shape}; expected (C, H, W) or (N, C, H, W)")
    n, c, h, w = array.shape
    if c not in (1, 3, 4):
        hint = " (it looks channel-last: transpose to channel-first)" if w in (1, 3, 4) else ""
        raise InputError(
            f"{source} has shape {array.shape}: the channel axis (axis -3) must be 1, 3 or 4{hint}"
        )
    if n == 0 or h == 0 or w == 0:
        raise InputError(f"{source} has shape {array.shape}; it holds no pixels")
    if n > MAX_BATCH:
        raise InputError(f"{source} holds {n} images; send at most {MAX_BATCH} per request")
    if array.dtype.kind == "b":
        raise InputError(f"{source} is boolean; send floats in [0, 1] or uint8 0–255")
    if array.dtype.kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise InputError(
                f"{source} holds integers in [{lo}, {hi}]; integer pixels must be 0–255"
            )
        return (array.astype(np.float32) / 255.0).astype(np.float32)
    out = np.asarray(array, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InputError(f"{source} contains NaN or infinite values")
    lo, hi = float(out.min()), float(out.max())
    if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        raise InputError(
            f"{source} holds floats in [{lo:.4g}, {hi:.4g}]; float pixels must be in [0, 1] "
            "(send uint8 for 0–255 values)"
        )
    return np.clip(out, 0.0, 1.0)


def _load_image(body: bytes, fmt: str) -> np.ndarray:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(body), formats=[fmt])
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise InputError(
                f"the {fmt} image is {width}×{height} pixels; at most {MAX_IMAGE_PIXELS} pixels are accepted"
            )
        image.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"the body is not a valid {fmt} image") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"the body is not a valid {fmt} image ({_short(exc)})") from None
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: Pillow's convert("L") would clip at 255, so scale instead
        pixels = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if image.mode.startswith("I;16") else max(1.0, float(pixels.max()))
        return np.clip(pixels / peak, 0.0, 1.0)[None, None].astype(np.float32)
    if image.mode not in ("L", "RGB", "RGBA"):
        # palette, CMYK, LA, 1-bit: let Pillow map them onto RGB (alpha dropped like RGBA)
        image = image.convert(
            "RGBA" if "A" in image.mode or "transparency" in image.info else "RGB"
        )
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return (pixels.transpose(2, 0, 1)[None].astype(np.float32) / 255.0).astype(np.float32)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- model input


def conform_images(images: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """Adapt decoded images to a model's input.

    ``images``: float32 ndarray (N, C, H, W) in [0, 1] with C in {1, 3, 4};
    ``input_shape``: the model's (C', H', W'). Returns float32 (N, C', H', W'): alpha is
    dropped, grey is repeated to RGB, RGB becomes grey by ITU-R 601 luma (as Pillow's
    ``convert("L")``), and the size is changed by antialiased bilinear resampling.
    """
    import numpy as np

    want_c, want_h, want_w = (int(v) for v in input_shape)
    if images.ndim != 4:
        raise InputError(f"images have shape {images.shape}; expected (N, C, H, W)")
    out = np.asarray(images, dtype=np.float32)
    if out.shape[1] == 4:
        out = out[:, :3]
    channels = out.shape[1]
    if channels != want_c:
        if channels == 1:
            out = np.repeat(out, want_c, axis=1)
        elif channels == 3 and want_c == 1:
            luma = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
            out = (out * luma).sum(axis=1, keepdims=True, dtype=np.float32)
        else:
            raise InputError(
                f"cannot convert {channels}-channel images to the model's {want_c} channels"
            )
    if out.shape[2:] != (want_h, want_w):
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            resized = F.interpolate(
                torch.from_numpy(np.ascontiguousarray(out)),
                size=(want_h, want_w),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        out = resized.clamp_(0.0, 1.0).numpy()
    return np.ascontiguousarray(out, dtype=np.float32)


# --------------------------------------------------------------------------- the served model


class ServedModel:
    """A loaded model, ready to answer requests, optionally recording each one.

    ``predict`` runs one request at a time (a lock around the forward pass), so with
    capture on, every request is recorded exactly once as its own PREDICT step and the
    step returned is that request's. ``capture`` is an object with ``predict(batch) ->
    logits`` (``batch``: float32 tensor (N, C, H, W) on ``device``) and ``close()``,
    e.g. :class:`ladis_core.capture.ServingCapture`, whose ``record(batch) -> (logits,
    step)`` is used when present (otherwise the step is read from ``last_step``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec: ModelSpec,
        *,
        device: str = "cpu",
        capture: Any | None = None,
        capture_uri: str | None = None,
    ) -> None:
        self.model = model
        self.spec = spec
        self.device = device
        self.capture = capture
        self.capture_uri = capture_uri
        self._lock = threading.Lock()
        self._closed = False
        self._requests = 0

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        capture_uri: str | None = None,
        layers: Sequence[str] = (),
    ) -> ServedModel:
        """Load ``model_dir`` (``model.pt`` + ``model.json``) on ``device`` and, when
        ``capture_uri`` is given, attach the PREDICT-mode capture writing there."""
        from ladis_core.models import load_model

        model, spec = load_model(model_dir, device=device)
        capture = _open_capture(model, capture_uri, layers=layers) if capture_uri else None
        return cls(model, spec, device=device, capture=capture, capture_uri=capture_uri)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def requests(self) -> int:
        """Requests answered so far."""
        return self._requests

    def predict(self, images: np.ndarray) -> Prediction:
        """Classify ``images`` (float32 (N, C, H, W) in [0, 1], any size and 1/3/4
        channels) as one request: one forward pass, one capture step."""
        import torch

        batch = conform_images(images, self.spec.input_shape)
        tensor = torch.from_numpy(batch).to(self.device)
        with self._lock:
            if self._closed:
                raise EndpointClosedError(
                    "the endpoint is shutting down; retry on another instance"
                )
            step: int | None = None
            with torch.no_grad():
                if self.capture is None:
                    logits = self.model(tensor)
                else:
                    logits, step = _capture_predict(self.capture, tensor)
            self._requests += 1
        probabilities = torch.softmax(logits.detach().float(), dim=1).cpu().numpy()
        return Prediction(
            probabilities=probabilities.astype("float32", copy=False),
            predicted_class=probabilities.argmax(axis=1).astype("int64"),
            class_names=tuple(self.spec.class_names),
            step=step,
        )

    def flush(self) -> int:
        """Publish the captured steps now (they are also published in the background
        and on close); returns how many were published."""
        capture = self.capture
        return int(capture.flush() or 0) if capture is not None and hasattr(capture, "flush") else 0

    def close(self) -> None:
        """Stop answering and flush/close the capture (idempotent; after a failed
        capture close, calling it again retries). A request already running finishes
        first: the lock is taken before the capture closes."""
        import atexit

        with self._lock:
            self._closed = True
            capture = self.capture
        if capture is None:
            return
        capture.close()  # raises (keeping the capture for a retry) if publishing fails
        self.capture = None
        atexit.unregister(self.close)  # registered by model_fn; nothing left to do at exit
        log.info("capture closed after %d requests (%s)", self._requests, self.capture_uri)


def _open_capture(model: torch.nn.Module, capture_uri: str, *, layers: Sequence[str]) -> Any:
    """The one place serving capture is created: a
    :class:`ladis_core.capture.ServingCapture` appending PREDICT steps to ``capture_uri``
    (after its newest step, so a restarted endpoint goes on numbering)."""
    from ladis_core.capture import ServingCapture

    return ServingCapture(model, capture_uri, layers=tuple(layers))


def _capture_predict(capture: Any, batch: torch.Tensor) -> tuple[torch.Tensor, int | None]:
    """Run ``batch`` through the capture; return the logits and the step it recorded."""
    record = getattr(capture, "record", None)
    if record is not None:  # ServingCapture: logits and step taken under its own lock
        logits, step = record(batch)
    else:
        logits, step = capture.predict(batch), getattr(capture, "last_step", None)
    return logits, (None if step is None else int(step))


def resolve_device(device: str | None) -> str:
    """``"auto"``/``None`` → ``"cuda"`` when available, else ``"cpu"``; ``"cuda"``
    without a GPU raises :class:`~ladis_core.errors.InputError`."""
    from ladis_core.devices import resolve_device as _resolve

    return str(_resolve(device or None, default="auto"))


# --------------------------------------------------------------------------- SageMaker contract


def model_fn(model_dir):
    """SageMaker: load the model in ``model_dir`` (``model.pt`` + ``model.json``).

    Returns a :class:`ServedModel`. Capture is on when ``LADIS_CAPTURE_URI`` is set
    (``LADIS_CAPTURE_LAYERS``: extra layer regexes, comma-separated); the device comes
    from ``LADIS_DEVICE`` (default: the GPU when there is one).
    """
    import atexit

    capture_uri = os.environ.get(CAPTURE_URI_ENV, "").strip() or None
    layers = tuple(
        x.strip() for x in os.environ.get(CAPTURE_LAYERS_ENV, "").split(",") if x.strip()
    )
    served = ServedModel.load(
        model_dir,
        device=resolve_device(os.environ.get(DEVICE_ENV)),
        capture_uri=capture_uri,
        layers=layers,
    )
    if served.capture is not None:
        # smdebug's S3 writer loses (and raises on) what it has not flushed unless closed
        atexit.register(served.close)
    return served


def input_fn(request_body, content_type):
    """SageMaker: decode a request body into float32 images (N, C, H, W) in [0, 1]."""
    with _toolkit_errors():
        return decode_request(request_body, content_type)


def predict_fn(data, model):
    """SageMaker: classify decoded images with a :class:`ServedModel`; one capture step."""
    with _toolkit_errors():
        return model.predict(data)


def output_fn(prediction, accept):
    """SageMaker: the JSON answer, as ``(body bytes, "application/json")``."""
    with _toolkit_errors():
        return encode_response(prediction, accept)


def encode_response(prediction: Prediction, accept: str | None) -> tuple[bytes, str]:
    """``prediction`` as JSON bytes; :class:`NotAcceptableError` unless ``accept`` allows
    JSON (several types, ``q`` values and wildcards are understood)."""
    check_accept(accept)
    return json.dumps(prediction.to_dict()).encode("utf-8"), JSON_TYPE


def check_accept(accept: str | None) -> None:
    """Raise :class:`NotAcceptableError` unless ``accept`` allows a JSON answer."""
    offered = [normalize_content_type(part) for part in (accept or "").split(",")]
    if not any(kind in _ACCEPTED_RESPONSE_TYPES for kind in offered):
        raise NotAcceptableError(
            f"Accept {accept!r} cannot be met; this endpoint answers {JSON_TYPE}"
        )


class _toolkit_errors:
    """On SageMaker, turn LADIS's client errors into the toolkit's errors so the client
    gets 400/406/415 with the message instead of a 500; elsewhere a no-op."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, InputError | EndpointClosedError):
            return False
        try:
            from sagemaker_inference.errors import GenericInferenceToolkitError
        except ImportError:
            return False
        status = getattr(exc, "status", 400)
        raise GenericInferenceToolkitError(status, str(exc)) from exc
