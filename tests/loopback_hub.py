"""A Hugging Face Hub stand-in on 127.0.0.1 for one repo, a dataset's (what huggingface_hub's `snapshot_download`
calls) or a model's (what open_clip's `hf-hub:` loader calls through `hf_hub_download`).

It answers the info API, HEAD and GET on `resolve/` (X-Repo-Commit, ETag, and for LFS files (`*.tar`)
X-Linked-Etag / X-Linked-Size and a redirect to a CDN: a second server on another loopback port), with Range, and on
request: injected faults (a 429 says to wait 0 s, in Retry-After and in the rate limit header huggingface_hub
reads), a wrong listed size, a required token, a latency per request and a throttle per connection. It records every
request. The tests and `benchmarks/dataset_download.py` use it; it binds loopback only and stops with `close()` (or
on leaving a `with` block). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = hashlib.sha1(b"fixture commit").hexdigest()
CHUNK = 64 * 1024  # bytes written between throttle pauses


class Hub:
    """The state of one fake Hub: its files, the faults to inject, the requests it saw; and its two servers.

    `latency_s` delays the answer to every request (a network round trip); `mib_per_s` caps what one connection
    sends of a file body (as a CDN limits each connection); 0 means no limit.
    """

    def __init__(self, files: dict[str, bytes], repo: str, *, latency_s: float = 0.0, mib_per_s: float = 0.0,
                 repo_type: str = "dataset"):
        self.files = files
        self.repo = repo
        self.repo_type = repo_type
        self.latency_s = latency_s
        self.mib_per_s = mib_per_s
        self.listed_sizes: dict[str, int] = {}  # overrides: what the Hub lists disagrees with the bytes
        self.faults: dict[str, list[str]] = {}  # path (or "info") -> actions, one per GET: a status, drop, corrupt
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers)
        self.token: str | None = None  # when set, the API and resolve/ need it (the CDN never does)
        self.lock = threading.Lock()
        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Handler) for _ in range(2)]
        for server in self.servers:
            server.hub, server.daemon_threads = self, True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def endpoint(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.servers[i].server_address[1]}"

    @property
    def path(self) -> str:
        """Where the repo's page and its `resolve/` are."""
        return f"/datasets/{self.repo}" if self.repo_type == "dataset" else f"/{self.repo}"

    @property
    def url(self) -> str:
        return self.endpoint() + self.path

    def gets(self) -> list[str]:
        """The paths of the file bodies fetched, from resolve/ or the CDN."""
        return [p.split("/resolve/")[-1].removeprefix(COMMIT + "/").removeprefix("main/").removeprefix("/cdn/")
                for m, p, _ in self.requests if m == "GET" and ("/resolve/" in p or p.startswith("/cdn/"))]

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool):
        hub: Hub = self.server.hub
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        with hub.lock:
            hub.requests.append((self.command, path, {k.title(): v for k, v in self.headers.items()}))
        time.sleep(hub.latency_s)
        if path.startswith("/cdn/"):
            return self._body(path.removeprefix("/cdn/"), head)
        if hub.token and self.headers.get("Authorization") != f"Bearer {hub.token}":
            return self._send(401, b"unauthorized", {"X-Error-Message": "Invalid credentials in Authorization header"})
        info, resolve = f"/api/{hub.repo_type}s/{hub.repo}/revision/", f"{hub.path}/resolve/"
        if path.startswith(info):
            return self._info(path.removeprefix(info))
        if path.startswith(resolve):
            rev, _, rel = path.removeprefix(resolve).partition("/")
            if rev not in ("main", COMMIT):
                return self._send(404, b"", {"X-Error-Code": "RevisionNotFound"})
            return self._resolve(rel, head)
        self._send(404, b"no such repo", {"X-Error-Code": "RepoNotFound"})

    def _info(self, rev: str):
        hub: Hub = self.server.hub
        if rev not in ("main", COMMIT):
            return self._send(404, b"", {"X-Error-Code": "RevisionNotFound"})
        with hub.lock:
            action = hub.faults.get("info", [None]).pop(0) if hub.faults.get("info") else None
        if action == "429":
            return self._send(429, b"slow down", {"Retry-After": "0.01"})
        siblings = [{"rfilename": p} for p in sorted(hub.files)]
        body = {"id": hub.repo, "sha": COMMIT, "private": False, "siblings": siblings}
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _resolve(self, rel: str, head: bool):
        hub: Hub = self.server.hub
        if rel not in hub.files:
            return self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        data = hub.files[rel]
        headers = {"X-Repo-Commit": COMMIT}
        if rel.endswith(".tar"):  # an LFS file: listed by its sha256 and size, served by the CDN
            oid = hashlib.sha256(data).hexdigest()
            headers |= {"X-Linked-Etag": f'"{oid}"', "X-Linked-Size": str(hub.listed_sizes.get(rel, len(data))),
                        "ETag": '"git-pointer"', "Location": f"{hub.endpoint(1)}/cdn/{rel}"}
            return self._send(302, b"", headers)
        headers["ETag"] = '"' + hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() + '"'
        if head:
            return self._send(200, b"", headers | {"Content-Length": str(len(data))})
        self._body(rel, head)

    def _body(self, rel: str, head: bool):
        hub: Hub = self.server.hub
        with hub.lock:
            action = hub.faults.get(rel, [None]).pop(0) if hub.faults.get(rel) and not head else None
        if action and action.isdigit():  # 500, 503, 429...
            wait = {"Retry-After": "0", "RateLimit": '"api";r=0;t=0'} if action == "429" else {}
            return self._send(int(action), b"try again", wait)
        data = hub.files[rel]
        if action == "corrupt":  # the right length, the wrong bytes
            data = bytes(b ^ 0xFF for b in data)
        start, status = 0, 200
        if rng := self.headers.get("Range"):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return self._send(416, b"")
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if head:
            return
        if action == "drop":  # the connection dies mid-file
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        pause = CHUNK / (hub.mib_per_s * 2**20) if hub.mib_per_s else 0.0
        for offset in range(0, len(body), CHUNK):
            self.wfile.write(body[offset : offset + CHUNK])
            time.sleep(pause)

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
