"""Storage: the only code that reads and writes objects, and where things live.

One API over ``s3://`` URIs and local folders (:mod:`~ladis_core.store.client`,
:mod:`~ladis_core.store.objects`, :mod:`~ladis_core.store.transfer`, re-exported here:
``store.read_json(uri)``), the paths of a world (:mod:`~ladis_core.store.layout`) and the
local cache of downloaded trials and models (:mod:`~ladis_core.store.local_cache`).
"""

from ladis_core.store.client import DEFAULT_WORKERS, is_s3, local_path, s3_client, split_s3
from ladis_core.store.objects import (
    ObjectInfo,
    check_bucket,
    delete,
    ensure_bucket,
    exists,
    iter_objects,
    list_children,
    list_objects,
    read_bytes,
    read_json,
    write_bytes,
    write_json,
)
from ladis_core.store.transfer import MIRROR_MANIFEST, download_many, mirror_prefix, upload_dir

__all__ = [
    "DEFAULT_WORKERS",
    "MIRROR_MANIFEST",
    "ObjectInfo",
    "check_bucket",
    "delete",
    "download_many",
    "ensure_bucket",
    "exists",
    "is_s3",
    "iter_objects",
    "list_children",
    "list_objects",
    "local_path",
    "mirror_prefix",
    "read_bytes",
    "read_json",
    "s3_client",
    "split_s3",
    "upload_dir",
    "write_bytes",
    "write_json",
]
