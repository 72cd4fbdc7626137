"""Request and response bodies of the endpoint: decoding images from ``.npy``, PNG, JPEG
or JSON, conforming them to the model's input shape, and encoding answers.

Accepted request bodies:

- ``application/x-npy``: one ``.npy`` array of shape (C, H, W) or (N, C, H, W), channel
  first; floats in [0, 1], or integers as 0–255 pixel values.
- ``image/png``, ``image/jpeg``: one image (decoded by Pillow).
- ``application/json``: a nested list of the same shapes as ``.npy``, bare or as
  ``{"instances": …}`` / ``{"inputs": …}``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ladis_core.errors import InputError, NotAcceptableError, UnsupportedContentTypeError

if TYPE_CHECKING:  # only for annotations: importing this module must stay light
    import numpy as np

    from ladis_core.serving.model import Prediction

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


#: one decoded image may have at most this many pixels whatever the model (a tiny PNG
#: can inflate to gigabytes; Pillow's own bomb limit of ~179 Mpx is far too generous)
MAX_IMAGE_PIXELS = 4096 * 4096

#: a model taking H×W inputs accepts images of up to this many times H×W pixels (8× its
#: side), and at least MIN_IMAGE_PIXELS: anything bigger is only shrunk away again
PIXELS_PER_INPUT_PIXEL = 64
MIN_IMAGE_PIXELS = 512 * 512


#: at most this many images in one request (each request is one capture step)
MAX_BATCH = 512


#: values this far outside [0, 1] are rounding noise from a client's conversion, not errors
_RANGE_TOLERANCE = 1e-4


def normalize_content_type(content_type: str | None) -> str:
    """``"Image/PNG; charset=x"`` → ``"image/png"`` (parameters dropped, aliases mapped)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return _CONTENT_TYPE_ALIASES.get(base, base)


def pixel_limit(input_shape: Sequence[int]) -> int:
    """The most pixels per image worth decoding for a model taking ``input_shape``
    (C, H, W): ``PIXELS_PER_INPUT_PIXEL`` × H × W, within [MIN_IMAGE_PIXELS,
    MAX_IMAGE_PIXELS]."""
    _, height, width = (int(v) for v in input_shape)
    return max(MIN_IMAGE_PIXELS, min(MAX_IMAGE_PIXELS, PIXELS_PER_INPUT_PIXEL * height * width))


def decode_request(
    body: bytes | bytearray | memoryview | str,
    content_type: str | None,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Decode a request body into images.

    Returns a float32 ndarray of shape (N, C, H, W) with values in [0, 1], at the size and
    channel count of the payload (:func:`conform_images` adapts it to a model); an image
    of more than ``max_pixels`` pixels (H × W) is refused before it is decoded. Raises
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
        return _pixels_to_unit(_load_npy(body), source="the .npy array", max_pixels=max_pixels)
    if kind == JSON_TYPE:
        return _pixels_to_unit(
            _load_json_array(body), source="the JSON array", max_pixels=max_pixels
        )
    return _load_image(body, "PNG" if kind == PNG_TYPE else "JPEG", max_pixels=max_pixels)


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
    if len(shape) not in (3, 4) or any(size < 0 for size in shape):
        raise InputError(
            f"the .npy header declares shape {tuple(shape)[:8]}; expected (C, H, W) or (N, C, H, W)"
        )
    # read the header first: np.load allocates the declared shape before reading, so a
    # forged header could otherwise ask for terabytes (Python integers: no overflow)
    count = math.prod(shape)
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
    except RecursionError:  # the parser's own bound on nesting
        raise InputError("the JSON body nests too deeply; images nest 4 levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"the body is not valid JSON ({_short(exc)})") from None
    if isinstance(value, dict):
        key = next((k for k in ("instances", "inputs") if k in value), None)
        if key is None:
            raise InputError('a JSON body must be a nested list or {"instances": [...]}')
        value = value[key]
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InputError(f"the JSON array is ragged or not numeric ({_short(exc)})") from None
    if array.dtype.kind not in "fiub":
        raise InputError("the JSON array must hold numbers only")
    return array


def _pixels_to_unit(array: np.ndarray, *, source: str, max_pixels: int) -> np.ndarray:
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
    if h * w > max_pixels:
        raise InputError(
            f"{source} holds {h}×{w} images; this endpoint accepts at most {max_pixels} pixels "
            "per image"
        )
    if array.dtype.kind == "b":
        raise InputError(f"{source} is boolean; send floats in [0, 1] or uint8 0–255")
    if array.dtype.kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 255:
            raise InputError(
                f"{source} holds integers in [{lo}, {hi}]; integer pixels must be 0–255"
            )
        out = array.astype(np.float32)
        out /= 255.0
        return out
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


def _load_image(body: bytes, fmt: str, *, max_pixels: int) -> np.ndarray:
    """Decode once: the header is read first (size checked), then the pixels, into one
    float32 array (N=1, C, H, W); no other full-size float copy is made."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(body), formats=[fmt])
        width, height = image.size
        if width * height > max_pixels:
            raise InputError(
                f"the {fmt} image is {width}×{height} pixels; this endpoint accepts at most "
                f"{max_pixels} pixels per image"
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
    image.close()
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]  # alpha is dropped by conform_images anyway
    out = pixels.transpose(2, 0, 1)[None].astype(np.float32, order="C")
    out /= 255.0
    return out


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text if len(text) <= 200 else text[:197] + "..."


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
