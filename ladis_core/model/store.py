"""Where a served model comes from: a local folder, an ``s3://`` prefix or a
``model.tar.gz``, fetched into the local cache.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import tempfile
from pathlib import Path

from ladis_core import store
from ladis_core.config import cache_root
from ladis_core.errors import DataNotFoundError, InputError, StorageError

log = logging.getLogger("ladis.server")


def default_cache_dir() -> Path:
    """Where models fetched from S3 are cached: ``<LADIS_CACHE_DIR>/models``."""
    return cache_root() / "models"


def resolve_model_dir(model: str | Path, *, cache_dir: str | Path | None = None) -> Path:
    """A local folder holding the model of ``model`` (a folder, ``s3://`` prefix or
    ``.tar.gz``). Remote models are cached under ``cache_dir`` in a folder named after
    the objects' URIs, sizes and ETags, so a changed model is fetched afresh."""
    text = str(model)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if text.endswith((".tar.gz", ".tgz")):
        return _extract_archive(text, cache)
    if not store.is_s3(text):
        path = store.local_path(text)
        if not path.is_dir():
            raise DataNotFoundError(
                f"model folder {text} does not exist; train or download a model first"
            )
        return path
    objects = store.list_objects(text)
    if not objects:
        raise DataNotFoundError(f"no model under {text}: expected model.pt and model.json there")
    fingerprint = hashlib.sha256(
        "\n".join(
            f"{o.uri}\t{o.size}\t{o.etag}" for o in sorted(objects, key=lambda o: o.uri)
        ).encode()
    ).hexdigest()[:20]
    target = cache / fingerprint
    fetched = store.mirror_prefix(text, target)
    log.info("model %s: %d file(s) fetched into %s", text, len(fetched), target)
    return target


def _extract_archive(uri: str, cache: Path) -> Path:
    data = store.read_bytes(uri)
    target = cache / f"archive-{hashlib.sha256(data).hexdigest()[:20]}"
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            archive.extractall(staging, filter="data")  # refuses absolute paths and ../
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{uri} is not a readable model archive ({exc})") from None
    (staging / ".complete").write_text("")
    try:
        os.replace(staging, target)
    except OSError:  # another process extracted it first
        if not (target / ".complete").is_file():
            raise StorageError(f"cannot unpack {uri} into {target}") from None
    return target
