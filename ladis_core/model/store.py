"""Where a served model comes from: a local folder, an ``s3://`` prefix or a
``model.tar.gz``, fetched into the local cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
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


#: the members a model archive may hold (SageMaker's model.tar.gz of a LADIS model)
#: (spec.WEIGHTS_NAME, spec.SPEC_NAME), spelled out: importing spec would load torch here
ARCHIVE_MEMBERS = ("model.pt", "model.json")

#: at most this many members are looked at (a tar of millions of entries is refused)
MAX_ARCHIVE_MEMBERS = 1000

#: a model archive unpacks to at most this many bytes (a ResNet18 is 45 MB)
MAX_ARCHIVE_BYTES = 2 * 1024**3


def _extract_archive(uri: str, cache: Path) -> Path:
    """Unpack ``model.pt`` and ``model.json`` from the archive at ``uri`` into the cache.

    Only regular-file members with exactly those names (``./`` allowed) are extracted,
    each streamed into a private staging folder with its size bounded; folders and other
    regular files (``code/…``) are skipped, and any link or special file under an
    allowed name is refused. The archive is read from disk (downloaded first when in
    S3), never held in memory. A failure removes everything staged."""
    cache.mkdir(parents=True, exist_ok=True)
    with _local_archive(uri, cache) as path:
        digest = _sha256(path)
        target = cache / f"archive-{digest[:20]}"
        if (target / ".complete").is_file():
            return target
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".extract-"))
        try:
            _unpack_members(path, staging, uri=uri, max_bytes=MAX_ARCHIVE_BYTES)
            (staging / ".complete").write_text("")
            try:
                os.replace(staging, target)
            except OSError:  # another process extracted it first
                if not (target / ".complete").is_file():
                    raise StorageError(f"cannot unpack {uri} into {target}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


@contextlib.contextmanager
def _local_archive(uri: str, cache: Path) -> Iterator[Path]:
    """The archive as a local file (an ``s3://`` one is downloaded to a temporary file)."""
    if not store.is_s3(uri):
        path = store.local_path(uri)
        if not path.is_file():
            raise DataNotFoundError(f"model archive {uri} does not exist")
        yield path
        return
    fd, name = tempfile.mkstemp(dir=cache, prefix=".download-", suffix=".tar.gz")
    os.close(fd)
    try:
        store.download_many([(uri, name)])
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack_members(path: Path, staging: Path, *, uri: str, max_bytes: int) -> None:
    found: set[str] = set()
    total = 0
    try:
        with tarfile.open(path, mode="r:*") as archive:
            for count, member in enumerate(iter(archive.next, None), 1):
                if count > MAX_ARCHIVE_MEMBERS:
                    raise InputError(
                        f"{uri} holds more than {MAX_ARCHIVE_MEMBERS} members; a model archive "
                        f"holds {' and '.join(ARCHIVE_MEMBERS)}"
                    )
                name = member.name.removeprefix("./")
                if name not in ARCHIVE_MEMBERS:
                    continue  # folders, code/, anything else: never extracted
                if not member.isreg():
                    raise InputError(
                        f"{uri}: member {member.name!r} is a link or special file, not a regular "
                        "file; refusing the archive"
                    )
                if name in found:
                    raise InputError(f"{uri} holds {name} twice; refusing the archive")
                total += member.size
                if total > max_bytes:
                    raise InputError(
                        f"{uri} unpacks to more than {max_bytes} bytes; refusing the archive"
                    )
                _copy_member(archive, member, staging / name, limit=member.size, uri=uri)
                found.add(name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise InputError(f"{uri} is not a readable model archive ({exc})") from None
    missing = [name for name in ARCHIVE_MEMBERS if name not in found]
    if missing:
        raise InputError(f"{uri} holds no {' or '.join(missing)}; a model archive needs both")


def _copy_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, *, limit: int, uri: str
) -> None:
    source = archive.extractfile(member)
    if source is None:
        raise InputError(f"{uri}: member {member.name!r} cannot be read")
    written = 0
    with source, open(dest, "xb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise InputError(f"{uri}: member {member.name!r} is longer than its header says")
            out.write(chunk)
