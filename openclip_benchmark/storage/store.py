"""The results store: one interface over a local folder and an S3-compatible bucket (AWS S3, Cloudflare R2, ...)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_bytes

TRANSIENT_EXIT_CODE = 75  # EX_TEMPFAIL: a retry may fix it


class StoreError(BenchmarkError):
    pass


class TransientStoreError(StoreError):
    """Network or service trouble that a retry may fix."""

    exit_code = TRANSIENT_EXIT_CODE


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # S3 ETag, or size+mtime for local files: changes whenever the content may have


def check_key(key: str) -> str:
    """Refuse keys that could escape the store root: absolute, '..', backslashes, empty parts."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StoreError(f"unsafe store key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise StoreError(f"unsafe store key {key!r}")
    return key


class LocalStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def url_for(self, key: str) -> str:
        return str(self._path(key).resolve())

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"{key} not found in {self.root}") from None

    def put(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self._path(key), data)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        stack = [self.root]
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as it:
                for item in it:
                    if item.name.startswith("."):  # temp files of atomic writes, hidden files
                        continue
                    if item.is_dir(follow_symlinks=False):
                        stack.append(Path(item.path))
                    elif item.is_file(follow_symlinks=False):
                        key = Path(item.path).relative_to(self.root).as_posix()
                        if key.startswith(prefix):
                            st = item.stat()
                            yield ObjectInfo(key, st.st_size, f"{st.st_size}-{st.st_mtime_ns}")


class S3Store:
    """Any S3 endpoint. Objects appear whole or not at all, so a put is atomic by the protocol."""

    def __init__(self, url: str, endpoint_url: str | None = None, max_pool: int = 32):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise StoreError(f"no bucket in {url!r}; expected s3://bucket/prefix")
        self.url = url.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or os.environ.get("R2_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        self.client = make_s3_client(self.endpoint_url, max_pool)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _wrap(exc) from None
        except Exception as exc:
            raise _wrap(exc) from None

    def get(self, key: str) -> bytes:
        return self.get_object(self._key(key))[0]

    def get_object(self, full_key: str) -> tuple[bytes, str]:
        """Body and ETag of an object by its full bucket key (as `list` reports it, prefix included)."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=full_key)
            return resp["Body"].read(), resp.get("ETag", "").strip('"')
        except Exception as exc:
            raise _wrap(exc) from None

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType="application/json")
        except Exception as exc:
            raise _wrap(exc) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Keys relative to the store prefix, paginated. Keys that are not safe are still listed, for sync to refuse."""
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][len(base) :], int(obj["Size"]), obj.get("ETag", "").strip('"'))
        except Exception as exc:
            raise _wrap(exc) from None


def make_s3_client(endpoint_url: str | None, max_pool: int = 32):
    """A boto3 client with adaptive retries; credentials from the standard AWS chain (env, profile)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise StoreError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and R2_ENDPOINT_URL for R2) or AWS_PROFILE"
        )
    region = session.region_name or ("auto" if endpoint_url else "us-east-1")
    config = Config(
        retries={"max_attempts": 8, "mode": "adaptive"},
        max_pool_connections=max_pool,
        connect_timeout=10,
        read_timeout=60,
        signature_version="s3v4",
    )
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def _wrap(exc: Exception) -> StoreError:
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return StoreError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchKey") or (
            400 <= status < 500 and status not in (408, 429)
        ):
            return StoreError(f"S3 error {code or status}: {exc}")
        return TransientStoreError(f"S3 error {code or status}: {exc}")
    return TransientStoreError(f"store unreachable: {type(exc).__name__}: {exc}")


def open_store(url: str | os.PathLike, endpoint_url: str | None = None) -> LocalStore | S3Store:
    """`s3://bucket/prefix` (R2 via --endpoint-url or R2_ENDPOINT_URL) or a local folder."""
    url = str(url)
    if url.startswith("s3://"):
        return S3Store(url, endpoint_url)
    if "://" in url:
        raise StoreError(f"unsupported store {url!r}; use a local folder or s3://bucket/prefix")
    return LocalStore(url)
