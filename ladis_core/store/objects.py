"""Reading, writing and listing objects: one small API over ``s3://`` URIs and local paths.

Every function accepts either an ``s3://bucket/key`` URI or a local path (plain or
``file://``), so a whole LADIS world can live in a folder as well as in a bucket. S3 is
reached through boto3 with the standard AWS settings (``AWS_ENDPOINT_URL_S3`` etc.).

Listing uses our own ListObjectsV2 paginator: SeaweedFS returns nothing when ``StartAfter``
equals the listed prefix (docs/environment.md), so ``StartAfter`` is only ever sent with a
key strictly inside the prefix.

Errors become :class:`~ladis_core.errors.StorageError` (unreachable endpoint, denied
access, missing bucket) or :class:`~ladis_core.errors.DataNotFoundError` (missing object),
with messages that never contain credentials.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ladis_core.config import S3Settings
from ladis_core.errors import BucketNotFoundError, DataNotFoundError, StorageError
from ladis_core.store.client import (
    _s3_call,
    _storage_error,
    is_s3,
    local_path,
    read_body,
    s3_client,
    split_s3,
)
from ladis_core.store.files import write_atomic


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its full URI (or path), size in bytes and ETag (or mtime)."""

    uri: str
    size: int
    etag: str = ""


def read_bytes(uri: str) -> bytes:
    """The content of one object or file; :class:`DataNotFoundError` when missing."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        response = _s3_call(uri, "read", s3_client().get_object, Bucket=bucket, Key=key)
        return read_body(response["Body"], uri)
    path = local_path(uri)
    if not path.is_file():
        raise DataNotFoundError(f"{uri} does not exist")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from None


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


def write_bytes(
    uri: str,
    data: bytes,
    *,
    content_type: str | None = None,
    if_absent: bool = False,
    durable: bool = False,
) -> bool:
    """Store ``data`` at ``uri``. With ``if_absent=True`` the write happens only if nothing
    is there yet (S3 conditional write ``If-None-Match: *``; locally a temporary file
    linked into place) and the return value says whether this call created it.

    Local files are never seen half-written (temporary file, then rename or link); with
    ``if_absent`` or ``durable`` (claims, results, bookmarks) the file and its folder
    are also fsynced.
    S3 acknowledges a write only once it is stored, so ``durable`` changes nothing there."""
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
    return write_atomic(local_path(uri), data, exclusive=if_absent, durable=durable or if_absent)


def write_json(uri: str, value: Any, *, if_absent: bool = False, durable: bool = False) -> bool:
    text = json.dumps(value, indent=2, allow_nan=False)
    return write_bytes(
        uri, text.encode(), content_type="application/json", if_absent=if_absent, durable=durable
    )


def delete(uri: str) -> None:
    """Remove one object or file (no error if it is already gone)."""
    if is_s3(uri):
        bucket, key = split_s3(uri)
        _s3_call(uri, "delete", s3_client().delete_object, Bucket=bucket, Key=key)
        return
    local_path(uri).unlink(missing_ok=True)


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
            raise BucketNotFoundError(
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
