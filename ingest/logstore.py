"""Where the attempt log lives: a local directory or an S3-compatible object store, behind one interface.

Every writer and reader of the log (attempt files, rollups) goes through a
`LogStore`. Keys are relative to the log's root and use ``/``:
``attempts/date=D/hour=H/NAME.parquet``, ``rollups/<rollup>/date=D/hour=H/NAME``.

* `LocalStore`: a directory, the layout of every release so far. Files
  appear whole (`ingest.files`: temporary name, fsync, rename or link).
* `S3Store`: ``s3://bucket/prefix``, with the endpoint and credentials from
  the standard ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY`` and ``AWS_REGION``. Writes go through `obstore`
  (an object put is atomic, and ``mode="create"`` refuses an existing key:
  the basis of exactly-once without rename, docs/log-store.md); reads go
  through Arrow's C++ S3 client, which DuckDB reads as an fsspec filesystem
  (its own `httpfs` extension cannot be downloaded here).

`open_store` turns what a user wrote (a path, or an ``s3://`` URL) into a store.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import duckdb
import obstore
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from obstore.exceptions import AlreadyExistsError
from obstore.store import S3Store as ObjectStore

from ingest.errors import LogStoreError
from ingest.files import TMP_DIR, publish_bytes, publish_parquet

if TYPE_CHECKING:  # typing-only names of obstore
    from obstore.store import ClientConfig, S3Config

#: The variables an object store's endpoint and credentials are read from (as every AWS tool does).
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"
KEY_VARIABLE = "AWS_ACCESS_KEY_ID"
SECRET_VARIABLE = "AWS_SECRET_ACCESS_KEY"
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
DEFAULT_REGION = "us-east-1"
#: Bytes DuckDB's reads of a file on the store are rounded up to (a footer, a column chunk).
_READ_BLOCK = 1 << 20

__all__ = ["LocalStore", "LogStore", "LogStoreError", "S3Settings", "S3Store", "StoredFile", "open_store"]


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of the log: its key under the root, size in bytes, and when it was written (epoch s)."""

    key: str
    size: int
    modified: float


class LogStore(ABC):
    """The attempt log's root: where files are published, listed, read and deleted."""

    #: How the store is shown to people (a path or an ``s3://`` URL; never a credential).
    location: str

    def path(self, key: str) -> str:
        """What DuckDB, polars and Arrow read for `key` (a glob too): the root joined with the key."""
        return f"{self.location.rstrip('/')}/{key}"

    @abstractmethod
    def publish(self, key: str, table: pa.Table, *, exclusive: bool = False, **options: Any) -> bool:
        """Write `table` as Parquet at `key`, whole or not at all; whether it was written.

        With `exclusive`, an existing `key` is left as it is and False is
        returned: the file is already there, whole, from an earlier attempt.
        Otherwise the key is replaced.
        """

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write a small file (a manifest) whole; with `exclusive`, False when `key` exists (it is kept)."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """A whole small file; FileNotFoundError when gone."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[StoredFile]:
        """Every published file whose key starts with `prefix`, in no particular order."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove `keys`; a key already gone is no error."""

    @abstractmethod
    def read_table(self, key: str, **options: Any) -> pa.Table:
        """One Parquet file (`pyarrow.parquet.read_table` options); FileNotFoundError when gone."""

    def keys(self, prefix: str) -> Iterator[str]:
        """The keys `list` gives, for callers that need no size or time (a local store skips a stat)."""
        for stored in self.list(prefix):
            yield stored.key

    def has_files(self, prefix: str) -> bool:
        """Whether any file's key starts with `prefix` (stops at the first)."""
        return next(self.keys(prefix), None) is not None

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let `con` read the store (before its configuration is locked). Local files need nothing."""
        return None

    def storage_options(self) -> dict[str, str] | None:
        """What polars' `scan_parquet` needs to read `path(...)`; None for local files."""
        return None

    def exists(self, key: str) -> bool:
        """Whether `key` is a published file."""
        return any(stored.key == key for stored in self.list(key))


class LocalStore(LogStore):
    """A log in a directory: the data directory's ``attempts/`` and ``rollups/``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)

    def publish(self, key: str, table: pa.Table, *, exclusive: bool = False, **options: Any) -> bool:
        return publish_parquet(table, self.root / key, exclusive=exclusive, **options)

    def put_bytes(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        return publish_bytes(data, self.root / key, exclusive=exclusive)

    def read_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def list(self, prefix: str) -> Iterator[StoredFile]:
        for key, entry in self._files(prefix):
            try:
                stat = entry.stat()
            except FileNotFoundError:  # removed since the listing
                continue
            yield StoredFile(key, stat.st_size, stat.st_mtime)

    def keys(self, prefix: str) -> Iterator[str]:
        # A reader lists a month's attempt files before each query: a stat each was a quarter of it.
        for key, _ in self._files(prefix):
            yield key

    def _files(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        # The deepest directory the prefix names whole, then a walk below it.
        directory, _, _ = prefix.rpartition("/")
        yield from self._walk(os.path.join(self.root, directory) if directory else str(self.root), prefix)

    def _walk(self, directory: str, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        # Keys by slicing the root off each path: a month's listing is tens of
        # thousands of entries, and a Path per entry tripled its time.
        start = len(self.location) + 1
        for entry in entries:
            key = entry.path[start:].replace(os.sep, "/")
            if entry.is_dir(follow_symlinks=False):
                if entry.name != TMP_DIR and (key.startswith(prefix) or prefix.startswith(key + "/")):
                    yield from self._walk(entry.path, prefix)
            elif key.startswith(prefix) and not entry.name.endswith(".tmp"):
                yield key, entry

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)

    def read_table(self, key: str, **options: Any) -> pa.Table:
        return pq.read_table(self.root / key, **options)

    def __repr__(self) -> str:
        return f"LocalStore({self.location!r})"


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where an object store is and how to sign for it (from the environment, as AWS tools read it)."""

    endpoint: str | None
    region: str
    access_key: str | None
    secret_key: str | None = field(repr=False)  # never in a log line or a traceback's locals shown

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> S3Settings:
        key, secret = environ.get(KEY_VARIABLE) or None, environ.get(SECRET_VARIABLE) or None
        if (key is None) != (secret is None):
            missing = SECRET_VARIABLE if secret is None else KEY_VARIABLE
            raise LogStoreError(
                f"{missing} is not set: set both {KEY_VARIABLE} and {SECRET_VARIABLE}, or neither"
            )
        region = next((environ[name] for name in REGION_VARIABLES if environ.get(name)), DEFAULT_REGION)
        return cls(environ.get(ENDPOINT_VARIABLE) or None, region, key, secret)


class S3Store(LogStore):
    """A log under ``s3://bucket/prefix`` of an S3-compatible object store."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    @cached_property
    def _objects(self) -> Any:
        return self._object_store(prefix=self.prefix or None)

    def _object_store(self, prefix: str | None) -> Any:
        settings = self.settings
        config: S3Config = {"region": settings.region}
        if settings.endpoint:
            config["endpoint"] = settings.endpoint
        if settings.access_key and settings.secret_key:
            config["access_key_id"] = settings.access_key
            config["secret_access_key"] = settings.secret_key
        else:
            config["skip_signature"] = True
        client: ClientConfig = {
            "allow_http": bool(settings.endpoint and settings.endpoint.startswith("http://"))
        }
        return ObjectStore(self.bucket, prefix=prefix, config=config, client_options=client)

    @cached_property
    def _bucket_objects(self) -> Any:
        """An obstore store of the whole bucket (DuckDB names files by bucket and key)."""
        return self._object_store(prefix=None)

    @cached_property
    def filesystem(self) -> pafs.S3FileSystem:
        """Arrow's S3 client for this store (paths are ``bucket/prefix/key``)."""
        settings = self.settings
        options: dict[str, Any] = {"region": settings.region}
        if settings.endpoint:
            endpoint = urlsplit(settings.endpoint)
            options |= {"endpoint_override": endpoint.netloc, "scheme": endpoint.scheme or "https"}
        if settings.access_key:
            options |= {"access_key": settings.access_key, "secret_key": settings.secret_key}
        else:
            options["anonymous"] = True
        return pafs.S3FileSystem(**options)

    def _arrow_path(self, key: str) -> str:
        return f"{self.bucket}/{self.prefix}/{key}" if self.prefix else f"{self.bucket}/{key}"

    def publish(self, key: str, table: pa.Table, *, exclusive: bool = False, **options: Any) -> bool:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)
        # obstore takes bytes (other buffers it reads as streams of chunks).
        return self.put_bytes(key, sink.getvalue().to_pybytes(), exclusive=exclusive)

    def put_bytes(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        try:
            obstore.put(self._objects, key, data, mode="create" if exclusive else "overwrite")
        except AlreadyExistsError:
            return False
        except Exception as exc:
            raise self._error("writing", key, exc) from exc
        return True

    def read_bytes(self, key: str) -> bytes:
        try:
            return bytes(obstore.get(self._objects, key).bytes())
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise self._error("reading", key, exc) from exc

    def list(self, prefix: str) -> Iterator[StoredFile]:
        # obstore lists whole path segments: the folder the prefix ends in, filtered by the rest.
        folder = prefix.rpartition("/")[0]
        try:
            for chunk in obstore.list(self._objects, prefix=folder or None, chunk_size=1000):
                for meta in chunk:
                    if meta["path"].startswith(prefix):
                        yield StoredFile(meta["path"], meta["size"], meta["last_modified"].timestamp())
        except Exception as exc:
            raise self._error("listing", prefix, exc) from exc

    def delete(self, keys: Iterable[str]) -> None:
        batch = list(keys)
        if batch:
            try:
                obstore.delete(self._objects, batch)
            except Exception as exc:
                raise self._error("deleting", batch[0], exc) from exc

    def read_table(self, key: str, **options: Any) -> pa.Table:
        try:
            return pq.read_table(self._arrow_path(key), filesystem=self.filesystem, **options)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._error("reading", key, exc) from exc

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        con.register_filesystem(_duckdb_filesystem(self.filesystem, self._bucket_objects))

    def storage_options(self) -> dict[str, str]:
        settings = self.settings
        options = {"aws_region": settings.region}
        if settings.endpoint:
            options |= {"aws_endpoint_url": settings.endpoint, "aws_allow_http": "true"}
        if settings.access_key and settings.secret_key:
            options["aws_access_key_id"] = settings.access_key
            options["aws_secret_access_key"] = settings.secret_key
        else:
            options["aws_skip_signature"] = "true"
        return options

    def _error(self, doing: str, key: str, exc: BaseException) -> LogStoreError:
        # The client's message names the request, never the credentials that signed it.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return LogStoreError(f"{doing} {self.path(key)} failed: {reason}")

    def __repr__(self) -> str:
        return f"S3Store({self.location!r})"


def _duckdb_filesystem(filesystem: pafs.FileSystem, objects: Any) -> Any:
    """The fsspec filesystem DuckDB reads ``s3://`` through (fsspec loads here).

    `objects` is an obstore store of the whole bucket: reads of byte ranges go through it.
    """
    return _filesystem_class()(filesystem, objects=objects)


@cache
def _filesystem_class() -> type:
    from fsspec.implementations.arrow import ArrowFSWrapper
    from fsspec.spec import AbstractBufferedFile

    class ListedFile(AbstractBufferedFile):
        """A file whose size a listing gave: opened without a request, read by byte ranges."""

        def _fetch_range(self, start: int, end: int) -> bytes:
            key = self.path.split("/", 1)[1]  # the path is bucket/key
            return bytes(obstore.get_range(self.fs.objects, key, start=start, end=end))

    class S3ForDuckdb(ArrowFSWrapper):
        """fsspec's wrapper of Arrow's S3 client, with what a log of immutable files allows.

        DuckDB asks of every file it reads, on every query, its size, its
        modification time (to trust its cached footer) and a handle, each a
        request to the store; and it globs folder by folder. A published
        file never changes, so what a listing said of it holds: those three
        are answered from the listing (the handle reads byte ranges through
        obstore), and a glob lists its prefix flat (a request per 1,000
        keys). See docs/benchmarks.md for what it saves.
        """

        protocol = "s3"

        def __init__(self, fs: pafs.FileSystem, *, objects: Any, **kwargs: Any) -> None:
            super().__init__(fs, **kwargs)
            self.objects = objects
            self._listed: dict[str, pafs.FileInfo] = {}

        def find(
            self,
            path: str,
            maxdepth: int | None = None,
            withdirs: bool = False,
            detail: bool = False,
            **kwargs: Any,
        ) -> Any:
            base = self._strip_protocol(path).rstrip("/")
            selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
            found = {}
            for info in self.fs.get_file_info(selector):
                if info.type == pafs.FileType.File:
                    self._listed[info.path] = info
                    found[info.path] = self._make_entry(info)
            return found if detail else sorted(found)

        def info(self, path: str, **kwargs: Any) -> Any:
            listed = self._listed.get(self._strip_protocol(path))
            return self._make_entry(listed) if listed is not None else super().info(path, **kwargs)

        def modified(self, path: str) -> Any:
            listed = self._listed.get(self._strip_protocol(path))
            return listed.mtime if listed is not None else super().modified(path)

        def _open(
            self, path: str, mode: str = "rb", block_size: Any = None, seekable: bool = True, **kwargs: Any
        ) -> Any:
            listed = self._listed.get(self._strip_protocol(path))
            if mode != "rb" or not seekable or listed is None:
                return super()._open(path, mode, block_size, seekable, **kwargs)
            return ListedFile(
                self, listed.path, mode, block_size=_READ_BLOCK, cache_type="readahead", size=listed.size
            )

    return S3ForDuckdb


def open_store(location: str | os.PathLike[str] | LogStore) -> LogStore:
    """The store at `location`: a `LogStore` as it is, ``s3://bucket[/prefix]``, or a local directory."""
    if isinstance(location, LogStore):
        return location
    text = os.fspath(location)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme == "s3":
        parts = urlsplit(text)
        if not parts.netloc:
            raise LogStoreError(f"{text!r} names no bucket: write s3://bucket/prefix")
        return S3Store(parts.netloc, parts.path, S3Settings.from_environment())
    if scheme == "file":
        return LocalStore(urlsplit(text).path)
    if scheme:
        raise LogStoreError(f"{text!r}: the log is a directory or an s3://bucket/prefix URL, not {scheme}://")
    return LocalStore(text)
