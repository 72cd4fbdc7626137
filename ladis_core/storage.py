"""The only module that talks to S3: one small API over ``s3://`` URIs and local paths.

Every function accepts either an ``s3://bucket/key`` URI or a local path (plain or
``file://``), so a whole LADIS world can live in a folder as well as in a bucket. S3 is
reached through boto3 with the standard AWS settings (``AWS_ENDPOINT_URL_S3`` etc.).

Listing uses our own ListObjectsV2 paginator: SeaweedFS returns nothing when ``StartAfter``
equals the listed prefix (SPEC section 6), so ``StartAfter`` is only ever sent with a key
strictly inside the prefix.

Errors become :class:`~ladis_core.errors.StorageError` (unreachable endpoint, denied
access, missing bucket) or :class:`~ladis_core.errors.DataNotFoundError` (missing object),
with messages that never contain credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladis_core.config import S3Settings, redact
from ladis_core.errors import DataNotFoundError, StorageError
from ladis_core.progress import ProgressCallback, report

DEFAULT_WORKERS = 32


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its full URI (or path), size in bytes and ETag (or mtime)."""

    uri: str
    size: int
    etag: str = ""


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    if not is_s3(uri):
        raise StorageError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StorageError(f"no bucket in {uri!r}; expected s3://bucket/prefix")
    return bucket, key


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI (``file:///x`` or a plain path)."""
    text = str(uri)
    return Path(text[len("file://") :] if text.startswith("file://") else text)


# --------------------------------------------------------------------------- S3 client

_client_lock = threading.Lock()
_clients: dict[tuple, Any] = {}


def s3_client() -> Any:
    """A boto3 S3 client for the current AWS environment (shared, thread-safe)."""
    settings = S3Settings.from_environment()
    cache_key = (
        settings.endpoint_url,
        settings.region,
        os.environ.get("AWS_ACCESS_KEY_ID"),
        os.environ.get("AWS_SECRET_ACCESS_KEY"),
        os.environ.get("AWS_SESSION_TOKEN"),
        os.environ.get("AWS_PROFILE"),
    )
    with _client_lock:
        client = _clients.get(cache_key)
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                max_pool_connections=DEFAULT_WORKERS + 8,
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            )
            session = boto3.session.Session()
            client = session.client(
                "s3", endpoint_url=settings.endpoint_url, region_name=settings.region, config=config
            )
            _clients[cache_key] = client
        return client


def _storage_error(exc: BaseException, uri: str, action: str) -> Exception:
    """Translate a boto3/botocore exception into a clear, secret-free LADIS error."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = S3Settings.from_environment().describe()
    if isinstance(exc, EndpointConnectionError | ConnectionError):
        return StorageError(
            f"cannot reach S3 at {where} while trying to {action} {uri}; is the server running "
            "(python -m ladis_core s3 start) and AWS_ENDPOINT_URL_S3 right?"
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StorageError(
            f"no AWS credentials to {action} {uri}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return DataNotFoundError(f"{uri} does not exist")
        if code == "NoSuchBucket":
            bucket = split_s3(uri)[0]
            return StorageError(
                f"bucket {bucket!r} does not exist at {where} (needed to {action} {uri})"
            )
        if (
            code
            in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"}
            or status == 403
        ):
            return StorageError(
                f"access denied by {where} to {action} {uri} ({code or status}); "
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
            )
        return StorageError(f"S3 error {code or status} at {where} while trying to {action} {uri}")
    return StorageError(f"S3 failure at {where} while trying to {action} {uri}: {redact(str(exc))}")


def _s3_call(uri: str, action: str, func, /, **kwargs):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return func(**kwargs)
    except (BotoCoreError, ClientError, ConnectionError) as exc:
        raise _storage_error(exc, uri, action) from None


# --------------------------------------------------------------------------- reading


def read_bytes(uri: str) -> bytes:
    """The content of one object or file; :class:`DataNotFoundError` when missing."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        response = _s3_call(uri, "read", s3_client().get_object, Bucket=bucket, Key=key)
        return response["Body"].read()
    path = local_path(uri)
    if not path.is_file():
        raise DataNotFoundError(f"{uri} does not exist")
    return path.read_bytes()


def read_json(uri: str) -> Any:
    """Parse a JSON object; a corrupt file raises :class:`StorageError` naming it."""
    data = read_bytes(uri)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StorageError(f"{uri} is not valid JSON ({exc.__class__.__name__}: {exc})") from None


def exists(uri: str) -> bool:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        try:
            _s3_call(uri, "check", s3_client().head_object, Bucket=bucket, Key=key)
            return True
        except DataNotFoundError:
            return False
    return local_path(uri).is_file()


# --------------------------------------------------------------------------- writing


def write_bytes(
    uri: str, data: bytes, *, content_type: str | None = None, if_absent: bool = False
) -> bool:
    """Store ``data`` at ``uri``. With ``if_absent=True`` the write happens only if nothing
    is there yet (S3 conditional write ``If-None-Match: *``; an exclusive create locally)
    and the return value says whether this call created it."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
        if content_type:
            kwargs["ContentType"] = content_type
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        from botocore.exceptions import ClientError

        try:
            s3_client().put_object(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if if_absent and code in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                return False
            raise _storage_error(exc, uri, "write") from None
        except Exception as exc:  # noqa: BLE001 - botocore raises many connection types
            raise _storage_error(exc, uri, "write") from None
        return True
    path = local_path(uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if if_absent:
            try:
                with open(path, "xb") as handle:
                    handle.write(data)
            except FileExistsError:
                return False
            return True
        # write to a temporary file and rename, so readers never see half a file
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from None
    return True


def write_json(uri: str, value: Any, *, if_absent: bool = False) -> bool:
    text = json.dumps(value, indent=2, allow_nan=False)
    return write_bytes(uri, text.encode(), content_type="application/json", if_absent=if_absent)


def delete(uri: str) -> None:
    """Remove one object or file (no error if it is already gone)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        _s3_call(uri, "delete", s3_client().delete_object, Bucket=bucket, Key=key)
        return
    local_path(uri).unlink(missing_ok=True)


# --------------------------------------------------------------------------- listing


def iter_objects(prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
    """All objects under ``prefix`` (recursively), in key order.

    ``start_after`` is a full URI (or path) strictly inside ``prefix``; only objects after
    it are returned. SeaweedFS lists keys in folder-walk order (``a/b`` before ``a-c``),
    unlike AWS, so ``start_after`` is only safe where the names after the prefix sort the
    same both ways (fixed-width, zero-padded names); :func:`mirror_prefix` therefore lists
    everything and compares with what is already local.
    """
    if is_s3(prefix):
        bucket, key_prefix = split_s3(prefix)
        if key_prefix and not key_prefix.endswith("/"):
            key_prefix += "/"
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key_prefix, "MaxKeys": 1000}
        if start_after:
            after_key = split_s3(start_after)[1]
            if after_key.startswith(key_prefix) and after_key != key_prefix:
                kwargs["StartAfter"] = after_key
        client = s3_client()
        while True:
            page = _s3_call(prefix, "list", client.list_objects_v2, **kwargs)
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    f"s3://{bucket}/{item['Key']}", int(item["Size"]), str(item.get("ETag", ""))
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs.pop("StartAfter", None)
            kwargs["ContinuationToken"] = token
        return
    root = local_path(prefix)
    if not root.is_dir():
        return
    after = str(local_path(start_after)) if start_after else None
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            if after is None or full > after:
                found.append(full)
    for full in sorted(found):
        stat = os.stat(full)
        yield ObjectInfo(full, stat.st_size, str(stat.st_mtime_ns))


def list_objects(prefix: str, *, start_after: str | None = None) -> list[ObjectInfo]:
    return list(iter_objects(prefix, start_after=start_after))


def list_children(prefix: str) -> list[str]:
    """Names of the immediate "sub-folders" of ``prefix`` (S3 common prefixes), sorted."""
    if is_s3(prefix):
        bucket, key_prefix = split_s3(prefix)
        if key_prefix and not key_prefix.endswith("/"):
            key_prefix += "/"
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": key_prefix, "Delimiter": "/"}
        names: list[str] = []
        client = s3_client()
        while True:
            page = _s3_call(prefix, "list", client.list_objects_v2, **kwargs)
            for common in page.get("CommonPrefixes", []):
                names.append(common["Prefix"][len(key_prefix) :].rstrip("/"))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return sorted(names)
            kwargs["ContinuationToken"] = token
    root = local_path(prefix)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def check_bucket(uri: str) -> None:
    """Raise a clear :class:`StorageError` unless the bucket of ``uri`` is reachable and
    readable with the current credentials (local folders: unless it exists)."""
    if is_s3(uri):
        bucket, _ = split_s3(uri)
        try:
            _s3_call(uri, "open", s3_client().head_bucket, Bucket=bucket)
        except DataNotFoundError:
            where = S3Settings.from_environment().describe()
            raise StorageError(
                f"bucket {bucket!r} does not exist at {where} (needed for {uri})"
            ) from None
        return
    if not local_path(uri).exists():
        raise DataNotFoundError(f"{uri} does not exist")


def ensure_bucket(uri: str) -> None:
    """Create the bucket of ``uri`` if it does not exist (local: the folder)."""
    if not is_s3(uri):
        local_path(uri).mkdir(parents=True, exist_ok=True)
        return
    bucket, _ = split_s3(uri)
    from botocore.exceptions import ClientError

    try:
        s3_client().head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in {
            "404",
            "NoSuchBucket",
            "NotFound",
        }:
            raise _storage_error(exc, uri, "open") from None
    except Exception as exc:  # noqa: BLE001
        raise _storage_error(exc, uri, "open") from None
    _s3_call(uri, "create bucket for", s3_client().create_bucket, Bucket=bucket)


# --------------------------------------------------------------------------- bulk transfer


def _download_one(uri: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    if is_s3(uri):
        bucket, key = split_s3(uri)
        response = _s3_call(uri, "read", s3_client().get_object, Bucket=bucket, Key=key)
        with open(tmp, "wb") as handle:
            shutil.copyfileobj(response["Body"], handle, 1 << 20)
    else:
        shutil.copyfile(local_path(uri), tmp)
    os.replace(tmp, dest)


def _run_parallel(
    tasks: list, work, *, workers: int, stage: str, progress: ProgressCallback | None
) -> None:
    total = len(tasks)
    report(progress, stage, 0, total)
    if not total:
        return
    done = 0
    step = max(1, total // 100)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, total))) as pool:
        futures = [pool.submit(work, *task) for task in tasks]
        try:
            for future in as_completed(futures):
                future.result()
                done += 1
                if done % step == 0 or done == total:
                    report(progress, stage, done, total)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def download_many(
    pairs: Iterable[tuple[str, str | Path]],
    *,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> None:
    """Fetch ``(uri, local_destination)`` pairs in parallel; each file appears atomically."""
    tasks = [(uri, Path(dest)) for uri, dest in pairs]
    _run_parallel(tasks, _download_one, workers=workers, stage="download", progress=progress)


MIRROR_MANIFEST = ".ladis-mirror.json"


def mirror_prefix(
    prefix: str,
    local_dir: str | Path,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Copy every object under ``prefix`` that ``local_dir`` lacks, or holds in another
    version, there, in parallel. Returns the relative paths fetched.

    A manifest in ``local_dir`` records the size and ETag of every mirrored object, so a
    replaced object of the same size (e.g. retrained weights) is fetched again while
    unchanged objects are never downloaded twice.
    """
    local_dir = Path(local_dir)
    manifest_path = local_dir / MIRROR_MANIFEST
    try:
        manifest: dict[str, list] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    base = prefix.rstrip("/") + "/"
    pairs, versions = [], {}
    for info in iter_objects(prefix):
        relative = info.uri[len(base) :] if info.uri.startswith(base) else Path(info.uri).name
        if relative == MIRROR_MANIFEST:
            continue
        dest = local_dir / relative
        versions[relative] = [info.size, info.etag]
        if (
            dest.is_file()
            and dest.stat().st_size == info.size
            and manifest.get(relative) == versions[relative]
        ):
            continue
        pairs.append((info.uri, dest))
    download_many(pairs, workers=workers, progress=progress)
    if pairs:
        manifest.update(versions)
        local_dir.mkdir(parents=True, exist_ok=True)
        tmp = manifest_path.with_name(MIRROR_MANIFEST + ".part")
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, manifest_path)
    return [str(Path(dest).relative_to(local_dir)) for _, dest in pairs]


def _upload_one(path: Path, uri: str) -> None:
    write_bytes(uri, path.read_bytes())


def upload_dir(
    local_dir: str | Path,
    prefix: str,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressCallback | None = None,
) -> int:
    """Upload every file under ``local_dir`` to ``prefix`` (same relative paths), in
    parallel. Returns the number of files."""
    local_dir = Path(local_dir)
    tasks = [
        (path, f"{prefix.rstrip('/')}/{path.relative_to(local_dir).as_posix()}")
        for path in sorted(local_dir.rglob("*"))
        if path.is_file()
    ]
    _run_parallel(tasks, _upload_one, workers=workers, stage="upload", progress=progress)
    return len(tasks)
