"""A Hugging Face Hub stand-in on 127.0.0.1 for one repo, a dataset's (what huggingface_hub's `snapshot_download`
calls, and what its `create_repo`, `list_repo_tree` and `create_commit` call) or a model's (what open_clip's
`hf-hub:` loader calls through `hf_hub_download`).

Reading: the info API, HEAD and GET on `resolve/` (X-Repo-Commit, ETag, and for LFS files (`*.tar` and those
committed as LFS) X-Linked-Etag / X-Linked-Size and a redirect to a CDN: a second server on another loopback port),
with Range, and on request: injected faults (a 429 says to wait 0 s, in Retry-After and in the rate limit header
huggingface_hub reads), a wrong listed size, a required token, a latency per request and a throttle per connection.
Writing (dataset repos): repo creation, `validate-yaml` (the dataset card's front matter), the file tree (blob ids,
LFS sha256), `preupload` (regular or LFS, by the Hub's rules), the LFS batch API with basic transfer (the bytes PUT to
the CDN server) and `commit` (NDJSON), each commit recorded with what it carried. It records every request. The
tests and `benchmarks/dataset_download.py` use it; it binds loopback only and stops with `close()` (or on leaving a
`with` block). Standard library (and PyYAML, for the card) only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = hashlib.sha1(b"fixture commit").hexdigest()
CHUNK = 64 * 1024  # bytes written between throttle pauses
LFS_SUFFIXES = (".tar", ".parquet", ".png", ".arrow", ".npy", ".zip")  # the Hub's default .gitattributes, in part
LFS_MIN_BYTES = 10 * 2**20  # larger files go to LFS whatever their name
# the card metadata the Hub checks, in part (its full list of licenses and size categories)
LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc0-1.0", "odc-by", "other", "unknown"}
SIZE_CATEGORIES = {"n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M"}


class Hub:
    """The state of one fake Hub: its files, the faults to inject, the requests it saw; and its two servers.

    `latency_s` delays the answer to every request (a network round trip); `mib_per_s` caps what one connection
    sends of a file body (as a CDN limits each connection); 0 means no limit.
    """

    def __init__(self, files: dict[str, bytes], repo: str, *, latency_s: float = 0.0, mib_per_s: float = 0.0,
                 exists: bool = True, repo_type: str = "dataset"):
        self.files = files
        self.repo = repo
        self.repo_type = repo_type
        self.exists = exists  # False: the repo is made by `create_repo`
        self.private: bool | None = None  # as created
        self.head = COMMIT
        self.lfs_paths: set[str] = set()  # committed as LFS files
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> bytes, in the LFS storage (the CDN server)
        self.commits: list[dict] = []  # each: summary, description, files, lfs_files, deleted (paths)
        self.preuploads: list[list[str]] = []  # the paths each preupload call asked about
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

    def do_POST(self):
        self._write()

    def do_PUT(self):
        self._write()

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
        if path.startswith(tree := f"/api/{hub.repo_type}s/{hub.repo}/tree/"):
            return self._tree(path.removeprefix(tree), urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
        if path.startswith(info):
            return self._info(path.removeprefix(info))
        if path.startswith(resolve):
            rev, _, rel = path.removeprefix(resolve).partition("/")
            if rev not in ("main", hub.head):
                return self._send(404, b"", {"X-Error-Code": "RevisionNotFound"})
            return self._resolve(rel, head)
        self._send(404, b"no such repo", {"X-Error-Code": "RepoNotFound"})

    def _info(self, rev: str):
        hub: Hub = self.server.hub
        if rev not in ("main", hub.head):
            return self._send(404, b"", {"X-Error-Code": "RevisionNotFound"})
        with hub.lock:
            action = hub.faults.get("info", [None]).pop(0) if hub.faults.get("info") else None
        if action == "429":
            return self._send(429, b"slow down", {"Retry-After": "0.01"})
        siblings = [{"rfilename": p} for p in sorted(hub.files)]
        body = {"id": hub.repo, "sha": hub.head, "private": bool(hub.private), "siblings": siblings}
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _resolve(self, rel: str, head: bool):
        hub: Hub = self.server.hub
        if rel not in hub.files:
            return self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": hub.head})
        data = hub.files[rel]
        headers = {"X-Repo-Commit": hub.head}
        if rel.endswith(".tar") or rel in hub.lfs_paths:  # an LFS file: listed by its sha256 and size, served by the CDN
            oid = hashlib.sha256(data).hexdigest()
            headers |= {"X-Linked-Etag": f'"{oid}"', "X-Linked-Size": str(hub.listed_sizes.get(rel, len(data))),
                        "ETag": '"git-pointer"', "Location": f"{hub.endpoint(1)}/cdn/{rel}"}
            return self._send(302, b"", headers)
        headers["ETag"] = f'"{_git_oid(data)}"'
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

    # ---------------------------------------------------------------- writing: create, card, preupload, LFS, commit

    def _write(self):
        hub: Hub = self.server.hub
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        with hub.lock:
            hub.requests.append((self.command, path, {k.title(): v for k, v in self.headers.items()}))
        body = self._request_body()
        if self.command == "PUT" and path.startswith("/cdn-upload/"):  # the LFS storage: no token, like S3
            return self._store_lfs(path.removeprefix("/cdn-upload/"), body)
        if hub.token and self.headers.get("Authorization") != f"Bearer {hub.token}":
            return self._send(401, b"unauthorized", {"X-Error-Message": "Invalid credentials in Authorization header"})
        if path == "/api/repos/create":
            return self._create(json.loads(body))
        if path == "/api/validate-yaml":
            return self._validate_card(json.loads(body))
        if path == f"/datasets/{hub.repo}.git/info/lfs/objects/batch" and hub.exists:
            return self._lfs_batch(json.loads(body))
        api = f"/api/datasets/{hub.repo}/"
        verb, _, rev = path.removeprefix(api).partition("/")
        if not path.startswith(api) or not hub.exists:
            return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if rev != "main":
            return self._json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        if verb == "preupload":
            return self._preupload(json.loads(body)["files"])
        if verb == "commit":
            return self._commit([json.loads(line) for line in body.splitlines() if line.strip()])
        self._json(404, {"error": "not served here"})

    def _request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0] or b"0", 16):  # ends at the last, empty chunk
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(chunks)

    def _create(self, request: dict):
        hub: Hub = self.server.hub
        if f"{request.get('organization')}/{request.get('name')}" != hub.repo or request.get("type") != "dataset":
            return self._json(403, {"error": "You don't have the rights to create a repo in this namespace"})
        if hub.exists:
            return self._json(409, {"error": "You already created this dataset repo", "url": self._repo_url()})
        with hub.lock:
            hub.exists, hub.private = True, request.get("visibility") == "private" or bool(request.get("private"))
            hub.files[".gitattributes"] = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
            hub.head = hashlib.sha1(b"initial commit").hexdigest()
        self._json(200, {"url": self._repo_url(), "name": hub.repo})

    def _repo_url(self) -> str:
        return f"{self.server.hub.endpoint()}/datasets/{self.server.hub.repo}"

    def _validate_card(self, request: dict):
        """The checks the Hub makes of a dataset card's metadata, for the keys `benchmark publish` writes."""
        text = str(request.get("content", ""))
        errors = []
        if not text.startswith("---\n") or "\n---\n" not in text[3:]:
            errors.append("README.md has no YAML front matter between --- lines")
        else:
            import yaml

            try:
                meta = yaml.safe_load(text[4:text.index("\n---\n", 3)])
            except yaml.YAMLError as exc:
                meta, errors = None, [f"invalid YAML: {exc}"]
            if not isinstance(meta, dict):
                errors.append("the metadata is not a mapping")
            else:
                errors += _metadata_errors(meta)
        if errors:
            return self._json(400, {"errors": [{"message": e} for e in errors]})
        self._json(200, {"warnings": []})

    def _preupload(self, files: list[dict]):
        hub: Hub = self.server.hub
        with hub.lock:
            hub.preuploads.append([f["path"] for f in files])
        out = []
        for f in files:
            sample = base64.b64decode(f["sample"])
            lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] >= LFS_MIN_BYTES or b"\0" in sample
            entry = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if f["path"] in hub.files:
                data = hub.files[f["path"]]
                entry["oid"] = hashlib.sha256(data).hexdigest() if f["path"] in hub.lfs_paths else _git_oid(data)
            out.append(entry)
        self._json(200, {"files": out, "commitOid": hub.head})

    def _lfs_batch(self, request: dict):
        hub: Hub = self.server.hub
        objects = []
        for obj in request["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in hub.lfs_objects:  # already stored: no action, nothing is sent again
                entry["actions"] = {"upload": {"href": f"{hub.endpoint(1)}/cdn-upload/{obj['oid']}"}}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def _store_lfs(self, oid: str, data: bytes):
        if hashlib.sha256(data).hexdigest() != oid:
            return self._json(400, {"error": "the body does not hash to the object id"})
        with self.server.hub.lock:
            self.server.hub.lfs_objects[oid] = data
        self._send(200, b"")

    def _tree(self, rev: str, query: dict[str, list[str]]):
        """`list_repo_tree`: the files under a folder (all of them with `recursive`), with their blob ids and, for LFS
        files, their sha256; one page."""
        hub: Hub = self.server.hub
        if not hub.exists:
            return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        rev, _, folder = rev.partition("/")
        if rev != "main":
            return self._json(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        prefix = f"{folder}/" if folder else ""
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        out, folders = [], set()
        for path in sorted(p for p in hub.files if p.startswith(prefix)):
            rest = path.removeprefix(prefix)
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            folders.update(prefix + "/".join(rest.split("/")[: i + 1]) for i in range(rest.count("/")))
            data = hub.files[path]
            entry = {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data)}
            if path in hub.lfs_paths:
                sha = hashlib.sha256(data).hexdigest()
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
                entry |= {"oid": _git_oid(pointer), "lfs": {"oid": sha, "size": len(data), "pointerSize": len(pointer)}}
            out.append(entry)
        out += [{"type": "directory", "path": f, "oid": _git_oid(f.encode())} for f in sorted(folders)]
        self._json(200, out)

    def _commit(self, lines: list[dict]):
        hub: Hub = self.server.hub
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        files, lfs_files, deleted = {}, {}, []
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                if value["oid"] not in hub.lfs_objects:
                    return self._json(400, {"error": f"LFS object {value['oid']} was never uploaded"})
                lfs_files[value["path"]] = hub.lfs_objects[value["oid"]]
            elif key == "deletedFile":
                if value["path"] not in hub.files:
                    return self._json(404, {"error": "A file with this name doesn't exist"}, {"X-Error-Code": "EntryNotFound"})
                deleted.append(value["path"])
        with hub.lock:
            for path in deleted:
                hub.files.pop(path)
                hub.lfs_paths.discard(path)
            hub.files.update(files)
            hub.files.update(lfs_files)
            hub.lfs_paths = (hub.lfs_paths - set(files)) | set(lfs_files)
            hub.commits.append({"summary": header.get("summary"), "description": header.get("description"),
                                "files": sorted(files), "lfs_files": sorted(lfs_files), "deleted": deleted})
            hub.head = hashlib.sha1(json.dumps(hub.commits).encode()).hexdigest()
        self._json(200, {"commitUrl": f"{self._repo_url()}/commit/{hub.head}", "commitOid": hub.head, "success": True})

    def _json(self, status: int, body, headers: dict | None = None):
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _git_oid(data: bytes) -> str:
    """A git blob's id: what the Hub lists as a regular file's `oid`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _metadata_errors(meta: dict) -> list[str]:
    errors = []
    if "license" in meta and meta["license"] not in LICENSES:
        errors.append(f'"license" must be a license identifier, not {meta["license"]!r}')
    for key in ("tags", "task_categories", "size_categories", "language"):
        if key in meta and not (isinstance(meta[key], list) and all(isinstance(v, str) for v in meta[key])):
            errors.append(f'"{key}" must be a list of strings')
    if not set(meta.get("size_categories") or []) <= SIZE_CATEGORIES:
        errors.append(f'"size_categories" must be among {sorted(SIZE_CATEGORIES)}')
    configs = meta.get("configs", [])
    if not isinstance(configs, list):
        return errors + ['"configs" must be a list']
    names = [c.get("config_name") if isinstance(c, dict) else None for c in configs]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        errors.append('each of "configs" needs its own "config_name"')
    for config in (c for c in configs if isinstance(c, dict)):
        files = config.get("data_files")
        entries = files if isinstance(files, list) else [files]
        if not all(isinstance(e, str) or (isinstance(e, dict) and isinstance(e.get("path"), (str, list))) for e in entries):
            errors.append(f'"data_files" of {config.get("config_name")!r} must be paths or {{split, path}} entries')
    return errors
