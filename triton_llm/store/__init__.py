"""Object storage for checkpoints and engines: content-addressed entries with manifests.

One :class:`ObjectStore` interface over ``s3://bucket/prefix`` (AWS or any S3-compatible
endpoint) and ``file:///abs/dir``. An entry ``<stage>/<key>`` exists only once its
``manifest.json`` is written, last and with a conditional create; restores verify sha256 while
streaming and never leave an unverified file under its final name.
"""

from triton_llm.store.base import ObjectInfo, ObjectStore
from triton_llm.store.entries import PublishResult, find_entry, list_entries, publish, read_manifest
from triton_llm.store.manifest import FileEntry, Manifest
from triton_llm.store.restore import RestoreResult, pull, restore
from triton_llm.store.uri import open_store, parse_store_uri

__all__ = [
    "FileEntry",
    "Manifest",
    "ObjectInfo",
    "ObjectStore",
    "PublishResult",
    "RestoreResult",
    "find_entry",
    "list_entries",
    "open_store",
    "parse_store_uri",
    "publish",
    "pull",
    "read_manifest",
    "restore",
]
