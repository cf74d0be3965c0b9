"""The results store: one interface over a local folder and an S3-compatible bucket (AWS S3, Cloudflare R2, ...)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import urlsplit

from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_bytes
from ..core.paths import CONTROL, check_output_folder, unsafe_path

TRANSIENT_EXIT_CODE = 75  # EX_TEMPFAIL: a retry may fix it
TIMEOUT_ENV = "BENCHMARK_STORE_TIMEOUT"
DEFAULT_TIMEOUT = 60.0  # seconds one store request may take, all its tries together
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_URL = re.compile(r"(https?)://[^\s\"'<>]+", re.IGNORECASE)  # the whole URL: a path can name an account too


class StoreError(BenchmarkError):
    pass


class TransientStoreError(StoreError):
    """Network or service trouble that a retry may fix."""

    exit_code = TRANSIENT_EXIT_CODE


class StoreUnreachableError(TransientStoreError):
    """The endpoint did not connect or answer in time: the next request would wait as long, so callers stop."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # S3 ETag, or size+mtime for local files: changes whenever the content may have


class Store(Protocol):
    """What the worker, the backends and sync need of a store; keys are relative to its root (see layout.py)."""

    url: str
    credentials: tuple[str, ...]  # the environment variables a job on another machine needs to reach it

    def exists(self, key: str) -> bool: ...

    def get(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes) -> None: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def url_for(self, key: str) -> str: ...


def check_key(key: str) -> str:
    if unsafe_path(key):
        raise StoreError(f"unsafe store key {key!r}")
    return key


class LocalStore:
    """A folder. Its path is the user's own, so `..` is an ordinary path here (`--store ../runs`); only control
    characters, which no one means to type and a terminal would act on, are refused."""

    credentials: tuple[str, ...] = ()

    def __init__(self, root: str | os.PathLike):
        if CONTROL.search(str(root)):
            raise StoreError(f"store folder {str(root)!r} has a control character")
        self.root = check_output_folder(root, "store folder")
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

    credentials = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # the endpoint (R2) travels as the jobs' own

    def __init__(self, url: str, endpoint_url: str | None = None, max_pool: int = 32, timeout: float | None = None):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not _BUCKET.fullmatch(bucket):
            raise StoreError(f"no valid bucket in {url!r}; expected s3://bucket/prefix")
        prefix = prefix.rstrip("/")  # `s3://bkt/runs/` is `s3://bkt/runs`
        if prefix and unsafe_path(prefix):  # as strict as a key: every key below it is checked, so is it
            raise StoreError(
                f"unsafe store prefix in {url!r} (absolute, '.', '..', empty part, backslash or control character)"
            )
        self.bucket, self.prefix = bucket, prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url or os.environ.get("R2_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        self.timeout = store_timeout(timeout)
        self.client = make_s3_client(self.endpoint_url, max_pool, self.timeout)

    def _wrap(self, exc: Exception) -> StoreError:
        return _wrap(exc, self.endpoint_url, self.timeout)

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
            raise self._wrap(exc) from None
        except Exception as exc:
            raise self._wrap(exc) from None

    def get(self, key: str) -> bytes:
        return self.get_object(self._key(key))[0]

    def get_object(self, full_key: str) -> tuple[bytes, str]:
        """Body and ETag of an object by its full bucket key (as `list` reports it, prefix included)."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=full_key)
            return resp["Body"].read(), resp.get("ETag", "").strip('"')
        except Exception as exc:
            raise self._wrap(exc) from None

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType="application/json")
        except Exception as exc:
            raise self._wrap(exc) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Keys relative to the store prefix, paginated. Keys that are not safe are still listed, for sync to refuse."""
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][len(base) :], int(obj["Size"]), obj.get("ETag", "").strip('"'))
        except Exception as exc:
            raise self._wrap(exc) from None


def store_timeout(timeout: float | None = None) -> float:
    """Seconds one store request may take, all tries together: `timeout`, else $BENCHMARK_STORE_TIMEOUT, else 60."""
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV, "").strip()
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT
        except ValueError:
            raise StoreError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 < timeout < float("inf"):
        raise StoreError(f"the store timeout must be a positive number of seconds, not {timeout}")
    return float(timeout)


def _tries(timeout: float) -> int:
    """Up to 3 tries, each given at least 10 s: a dead endpoint costs `timeout`, not tries x 60 s."""
    return max(1, min(3, int(timeout // 10)))


def make_s3_client(endpoint_url: str | None, max_pool: int = 32, timeout: float | None = None):
    """A boto3 client with adaptive retries, bounded so that a request which never gets an answer fails within
    `timeout` (default $BENCHMARK_STORE_TIMEOUT or 60 s); credentials from the standard AWS chain (env, profile)."""
    import boto3
    from botocore.config import Config

    timeout = store_timeout(timeout)
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise StoreError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and R2_ENDPOINT_URL for R2) or AWS_PROFILE"
        )
    region = session.region_name or ("auto" if endpoint_url else "us-east-1")
    tries = _tries(timeout)
    per_try = 0.95 * timeout / tries  # the rest for the backoff between tries (50 ms, 100 ms for errors)
    config = Config(
        retries={"total_max_attempts": tries, "mode": "adaptive"},
        max_pool_connections=max_pool,
        connect_timeout=min(10.0, per_try / 3),
        read_timeout=per_try - min(10.0, per_try / 3),
        signature_version="s3v4",
    )
    try:
        return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    except ValueError as exc:  # botocore's "Invalid endpoint: <url>"
        raise StoreError(f"invalid S3 endpoint: {redact(str(exc), endpoint_url)}") from None


def redact(text: str, endpoint_url: str | None = None) -> str:
    """`text` without an endpoint's host or path: an R2 host names the account
    (`https://<account>.r2.cloudflarestorage.com`) and a path can too, so every URL keeps its scheme and a placeholder
    only (`https://***.r2.cloudflarestorage.com`, `http://<endpoint>`)."""

    def hide(match: re.Match) -> str:
        host = _hostname(match.group(0))
        return f"{match.group(1)}://" + ("***.r2.cloudflarestorage.com" if host.endswith(".r2.cloudflarestorage.com")
                                          else "<endpoint>")

    text = _URL.sub(hide, text)
    bare = _hostname(endpoint_url or "") if _URL.match(endpoint_url or "") else ""
    if bare:  # a host named without its scheme (urllib3's "host='...'")
        text = re.sub(re.escape(bare), "<endpoint>", text, flags=re.IGNORECASE)
    return text


def _hostname(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:  # a malformed port or IPv6 literal
        return ""


def _wrap(exc: Exception, endpoint_url: str | None, timeout: float) -> StoreError:
    """A one-line StoreError for any boto/network exception, never naming the endpoint's host."""
    from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError,
                                     ReadTimeoutError)

    if isinstance(exc, NoCredentialsError):
        return StoreError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
    endpoint = redact(endpoint_url or "https://s3.amazonaws.com", endpoint_url)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return StoreUnreachableError(
            f"the store at {endpoint} did not answer within {timeout:g} s ({_tries(timeout)} tries); "
            f"set {TIMEOUT_ENV} (or sync's --store-timeout) to wait longer"
        )
    if isinstance(exc, EndpointConnectionError):
        return StoreUnreachableError(f"cannot connect to the store at {endpoint}")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"S3 error {code or status}: {redact(str(exc), endpoint_url)}"
        if code in ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchKey") or (
            400 <= status < 500 and status not in (408, 429)
        ):
            return StoreError(message)
        return TransientStoreError(message)
    return TransientStoreError(f"store unreachable: {type(exc).__name__}: {redact(str(exc), endpoint_url)}")


def open_store(url: str | os.PathLike, endpoint_url: str | None = None, *, max_pool: int = 32,
               timeout: float | None = None) -> LocalStore | S3Store:
    """`s3://bucket/prefix` (R2 via --endpoint-url or R2_ENDPOINT_URL) or a local folder; the one place a store URL
    is checked, for every command that takes --store or $BENCHMARK_STORE."""
    url = str(url)
    if url.startswith("s3://"):
        return S3Store(url, endpoint_url, max_pool, timeout)
    if "://" in url:
        raise StoreError(f"unsupported store {url!r}; use a local folder or s3://bucket/prefix")
    return LocalStore(url)


def is_remote(store) -> bool:
    """Whether jobs on other machines can reach the store: any but a local folder."""
    return not isinstance(store, LocalStore)
