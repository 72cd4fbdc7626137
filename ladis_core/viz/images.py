"""Small, pure image helpers shared by the incident report and the dashboard.

Images are NumPy arrays of shape (C, H, W) with values in [0, 1] (C = 1 grey or 3 RGB),
as captured from the model's inputs; a (H, W) array is a grey image. Nothing here reads
storage or keeps state.

- :func:`png_bytes` / :func:`data_uri` / :func:`image_data_uri`: encode for HTML and
  Streamlit. The PNG encoder is a few lines of ``zlib`` (no imaging library needed) and
  picks the smallest of three PNG row filters, because report size matters (a
  report of 100 samples stays under 10 MB).
- :func:`perturbation_size`: L∞ and L2 size of ``adversarial - original``.
- :func:`amplified_difference` / :func:`difference_png`: the perturbation, amplified and
  drawn with a diverging colour map (blue = darker than the original, white = unchanged,
  red = brighter), since PGD perturbations of ε ≈ 0.01 are invisible otherwise.
- :func:`thumbnail` / :func:`thumbnail_data_uris`: shrink large images by block averaging (small ones are left alone and
  enlarged by the viewer with ``image-rendering: pixelated``).
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ladis_core.errors import InputError

#: ColorBrewer RdBu (11 classes), from -1 (dark blue) through white to +1 (dark red).
_DIVERGING_ANCHORS = np.array(
    [
        (0x05, 0x30, 0x61),
        (0x21, 0x66, 0xAC),
        (0x43, 0x93, 0xC3),
        (0x92, 0xC5, 0xDE),
        (0xD1, 0xE5, 0xF0),
        (0xF7, 0xF7, 0xF7),
        (0xFD, 0xDB, 0xC7),
        (0xF4, 0xA5, 0x82),
        (0xD6, 0x60, 0x4D),
        (0xB2, 0x18, 0x2B),
        (0x67, 0x00, 0x1F),
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class PerturbationSize:
    """Size of ``adversarial - original`` in pixel units of [0, 1] images."""

    linf: float
    l2: float


# --------------------------------------------------------------------------- arrays


def as_chw(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """``image`` as float32 (C, H, W) with C in {1, 3}, NaN → 0, clipped to [0, 1].

    Accepts (H, W) (grey) and (C, H, W); images with another channel count are averaged
    to one grey channel rather than rejected, so an odd input still gets a picture.
    """
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1] < 1 or array.shape[2] < 1 or array.shape[0] < 1:
        raise InputError(f"{name} has shape {tuple(np.shape(image))}; expected (C, H, W) or (H, W)")
    if array.shape[0] not in (1, 3):
        array = array.mean(axis=0, keepdims=True)
    return np.clip(np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def to_uint8_hwc(image: np.ndarray) -> np.ndarray:
    """A (C, H, W) or (H, W) image in [0, 1] → uint8 (H, W, C) with C in {1, 3}."""
    chw = as_chw(image)
    return np.ascontiguousarray((chw * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def thumbnail(image: np.ndarray, *, max_size: int = 64) -> np.ndarray:
    """Shrink ``image`` (C, H, W) so its longer side is at most ``max_size`` pixels, by
    averaging k×k blocks (k the smallest integer that fits; edges padded by repetition).
    Smaller images are returned unchanged (as float32 (C, H, W))."""
    if max_size < 1:
        raise InputError(f"max_size={max_size} must be at least 1")
    chw = as_chw(image)
    _, height, width = chw.shape
    k = math.ceil(max(height, width) / max_size)
    if k <= 1:
        return chw
    pad_h, pad_w = (-height) % k, (-width) % k
    padded = np.pad(chw, ((0, 0), (0, pad_h), (0, pad_w)), mode="edge")
    c, h, w = padded.shape
    return padded.reshape(c, h // k, k, w // k, k).mean(axis=(2, 4)).astype(np.float32)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of a (C, H, W) image by an integer ``factor``."""
    if factor < 1:
        raise InputError(f"factor={factor} must be at least 1")
    chw = as_chw(image)
    return chw if factor == 1 else chw.repeat(factor, axis=1).repeat(factor, axis=2)


# --------------------------------------------------------------------------- PNG


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode uint8 pixels of shape (H, W) / (H, W, 1) (grey) or (H, W, 3) (RGB) as PNG.

    Tries the None, Sub and Up row filters on the whole image and keeps the smallest.
    """
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise InputError(f"PNG pixels must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3) or array.shape[0] < 1 or array.shape[1] < 1:
        raise InputError(
            f"PNG pixels have shape {array.shape}; expected (H, W), (H, W, 1) or (H, W, 3)"
        )
    height, width, channels = array.shape
    rows = array.reshape(height, width * channels).astype(np.int16)
    sub = rows.copy()
    sub[:, channels:] -= rows[:, :-channels]
    up = rows.copy()
    up[1:] -= rows[:-1]
    best = b""
    for filter_type, filtered in ((0, rows), (1, sub), (2, up)):
        raw = np.empty((height, 1 + width * channels), dtype=np.uint8)
        raw[:, 0] = filter_type
        raw[:, 1:] = (filtered % 256).astype(np.uint8)
        compressed = zlib.compress(raw.tobytes(), 9)
        if not best or len(compressed) < len(best):
            best = compressed
    colour_type = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", best)
        + _png_chunk(b"IEND", b"")
    )


def png_bytes(image: np.ndarray, *, scale: int = 1) -> bytes:
    """A (C, H, W) or (H, W) image in [0, 1] as PNG bytes, enlarged ``scale`` times
    (nearest neighbour; for viewers that smooth small images)."""
    return encode_png(to_uint8_hwc(upscale(image, scale)))


def data_uri(data: bytes, *, mime: str = "image/png") -> str:
    """``data:<mime>;base64,...`` for inlining ``data`` in HTML."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_data_uri(image: np.ndarray, *, max_size: int | None = None, scale: int = 1) -> str:
    """A (C, H, W) image as a PNG data URI, first shrunk to ``max_size`` if given."""
    if max_size is not None:
        image = thumbnail(image, max_size=max_size)
    return data_uri(png_bytes(image, scale=scale))


def thumbnail_data_uris(
    images: np.ndarray, rows: np.ndarray, *, max_size: int = 32
) -> dict[int, str]:
    """PNG data URIs of ``images[rows]``, each shrunk to at most ``max_size`` pixels.

    ``images``: (n, C, H, W) in [0, 1]; ``rows``: (k,) integer indices into it.
    Returns ``{row: data URI}``; rows outside ``images`` are left out rather than raising,
    since a trial can hold fewer recorded inputs than representation rows.
    """
    count = len(images)
    return {
        int(row): image_data_uri(images[int(row)], max_size=max_size)
        for row in np.unique(np.asarray(rows, dtype=np.int64))
        if 0 <= int(row) < count
    }


# --------------------------------------------------------------------------- perturbations


def _pair(adversarial: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    adv = np.asarray(adversarial, dtype=np.float32)
    orig = np.asarray(original, dtype=np.float32)
    if adv.shape != orig.shape:
        raise InputError(
            f"the input has shape {adv.shape} but its original has shape {orig.shape}; "
            "they must match to compute a perturbation"
        )
    if adv.ndim == 2:
        adv, orig = adv[None], orig[None]
    if adv.ndim != 3:
        raise InputError(f"images have shape {adv.shape}; expected (C, H, W) or (H, W)")
    return adv, orig


def perturbation(adversarial: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``adversarial - original`` as float32 (C, H, W)."""
    adv, orig = _pair(adversarial, original)
    return adv - orig


def perturbation_size(adversarial: np.ndarray, original: np.ndarray) -> PerturbationSize:
    """L∞ (largest absolute pixel change) and L2 (Euclidean norm over all pixels and
    channels) of ``adversarial - original``, both in [0, 1] pixel units."""
    delta = perturbation(adversarial, original).astype(np.float64)
    return PerturbationSize(
        linf=float(np.abs(delta).max()), l2=float(np.sqrt(np.square(delta).sum()))
    )


def diverging_colors(values: np.ndarray) -> np.ndarray:
    """Map values in [-1, 1] (any shape S) to RGB in [0, 1], shape S + (3,): blue for
    negative, white for 0, red for positive (ColorBrewer RdBu)."""
    t = (np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), -1.0, 1.0) + 1.0) / 2.0
    grid = np.linspace(0.0, 1.0, len(_DIVERGING_ANCHORS))
    channels = [np.interp(t, grid, _DIVERGING_ANCHORS[:, c] / 255.0) for c in range(3)]
    return np.stack(channels, axis=-1)


def amplified_difference(
    adversarial: np.ndarray, original: np.ndarray, *, amplify: float | None = None
) -> tuple[np.ndarray, float]:
    """The perturbation as a colour image, shape (3, H, W) in [0, 1], and the factor used.

    Per pixel the channel with the largest absolute change is kept (with its sign), so a
    change in any channel shows. It is multiplied by ``amplify`` (default: the factor that
    maps the largest change to full colour) and drawn with :func:`diverging_colors`. An
    unchanged image is all white with factor 1.
    """
    delta = perturbation(adversarial, original)
    pick = np.abs(delta).argmax(axis=0)[None]
    signed = np.take_along_axis(delta, pick, axis=0)[0]
    if amplify is None:
        peak = float(np.abs(signed).max())
        amplify = 1.0 / peak if peak > 0 else 1.0
    elif not (math.isfinite(amplify) and amplify > 0):
        raise InputError(f"amplify={amplify!r} must be a positive number")
    rgb = diverging_colors(signed * amplify)
    return rgb.transpose(2, 0, 1).astype(np.float32), float(amplify)


def difference_png(
    adversarial: np.ndarray,
    original: np.ndarray,
    *,
    amplify: float | None = None,
    max_size: int | None = None,
) -> bytes:
    """PNG of :func:`amplified_difference` (shrunk to ``max_size`` if given)."""
    rgb, _ = amplified_difference(adversarial, original, amplify=amplify)
    if max_size is not None:
        rgb = thumbnail(rgb, max_size=max_size)
    return png_bytes(rgb)
