"""Natural images for a reference capture: an image folder or an ``.npz`` file.

- A folder with one sub-folder per class (ImageFolder style: the sub-folder names, sorted,
  become the class names and labels), or a flat folder of images (no labels). PNG and
  JPEG (and the other formats Pillow reads: :data:`~ladis_core.model.data.IMAGE_EXTENSIONS`).
- An ``.npz`` with ``images`` of shape (N, C, H, W), floats in [0, 1] (or uint8 0–255),
  and optionally ``labels`` (N,) and ``class_names``.

Unlike the demo's loader, nothing is skipped: an unreadable image, an empty folder, or
images of different sizes without ``image_size`` are an :class:`InputError` naming the
file, because a reference that silently lost images is a wrong reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ladis_core.errors import InputError
from ladis_core.model.data import IMAGE_EXTENSIONS
from ladis_core.progress import ProgressCallback, report


@dataclass(frozen=True, eq=False)
class ReferenceImages:
    """``images``: float32 (N, C, H, W) in [0, 1]; ``labels``: int64 (N,) or ``None``;
    ``class_names`` from the folder names or the file; ``source`` what was read."""

    images: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def _resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if tuple(tensor.shape[-2:]) != tuple(size):
        tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)
    return tensor.clamp(0.0, 1.0).numpy().astype(np.float32, copy=False)


def _read_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise InputError(
            f"--data: {path} is not a readable image ({type(exc).__name__}: {exc})"[:400]
        ) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _from_folder(
    root: Path, size: tuple[int, int] | None, channels: int, progress: ProgressCallback | None
) -> ReferenceImages:
    classes = [
        (d.name, _image_files(d))
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    ]
    classes = [(name, files) for name, files in classes if files]
    if classes:
        files = [(label, f) for label, (_, members) in enumerate(classes) for f in members]
        names: tuple[str, ...] = tuple(name for name, _ in classes)
    else:
        files = [(-1, f) for f in _image_files(root)]
        names = ()
    if not files:
        raise InputError(
            f"--data {root}: no images found (PNG or JPEG files, in the folder or in one "
            "sub-folder per class)"
        )
    mode = "RGB" if channels == 3 else "L"
    report(progress, "load images", 0, len(files), str(root))
    pixels = []
    for i, (_, path) in enumerate(files, 1):
        pixels.append(_read_image(path, mode, size))
        if i % 200 == 0 or i == len(files):
            report(progress, "load images", i, len(files))
    shapes = {p.shape for p in pixels}
    if len(shapes) > 1:
        first = pixels[0].shape
        odd = next(i for i, p in enumerate(pixels) if p.shape != first)
        raise InputError(
            f"--data {root}: images of different sizes ({files[0][1].name} is "
            f"{first[1]}×{first[2]}, {files[odd][1].name} is {pixels[odd].shape[1]}×"
            f"{pixels[odd].shape[2]}); give --image-size H W"
        )
    labels = np.array([label for label, _ in files], dtype=np.int64) if names else None
    return ReferenceImages(np.stack(pixels), labels, names, str(root))


def _from_npz(path: Path, size: tuple[int, int] | None) -> ReferenceImages:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "images" not in npz.files:
                raise InputError(
                    f"--data {path} holds no 'images' array (it has {', '.join(npz.files)})"
                )
            images = np.asarray(npz["images"])
            labels = np.asarray(npz["labels"]) if "labels" in npz.files else None
            names = tuple(str(n) for n in npz["class_names"]) if "class_names" in npz.files else ()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, pickle and format errors alike
        raise InputError(f"--data {path} is not a readable .npz file ({exc})"[:400]) from None
    if images.ndim != 4 or len(images) == 0:
        raise InputError(
            f"--data {path}: 'images' must have shape (N, C, H, W), got {images.shape}"
        )
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    images = images.astype(np.float32, copy=False)
    if not np.isfinite(images).all() or images.min() < 0.0 or images.max() > 1.0:
        raise InputError(f"--data {path}: 'images' must hold values in [0, 1] (or uint8 0–255)")
    if labels is not None and labels.shape != (len(images),):
        raise InputError(
            f"--data {path}: 'labels' must have shape ({len(images)},), got {labels.shape}"
        )
    if size is not None:
        images = _resize(images, size)
    return ReferenceImages(
        images, None if labels is None else labels.astype(np.int64), names, str(path)
    )


def load_reference_images(
    data: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int = 3,
    progress: ProgressCallback | None = None,
) -> ReferenceImages:
    """The images at ``data`` (a folder or an ``.npz``), resized to ``image_size`` (H, W)
    when given; folders are read as ``channels`` (1: grey, 3: RGB)."""
    if channels not in (1, 3):
        raise InputError(f"--channels {channels} must be 1 (grey) or 3 (RGB)")
    path = Path(data).expanduser()
    if path.is_dir():
        return _from_folder(path, image_size, channels, progress)
    if path.is_file() and path.suffix.lower() == ".npz":
        return _from_npz(path, image_size)
    if path.exists():
        raise InputError(f"--data {data} is neither a folder of images nor an .npz file")
    raise InputError(f"--data {data}: no such folder or file")
