"""An image host stand-in: what `dataset add` downloads from in the tests and `benchmarks/own_data.py`.

`/img/<name>` serves the bytes it was given; the fault paths answer as a bad web host does: `/missing` 404, `/slow`
answers only once the host closes (at most `slow_s` later, past any client timeout however loaded the machine is),
`/page` an HTML page with status 200, `/huge` a body of `huge_bytes`, `/loop` redirects to itself, `/corrupt` a
truncated PNG; each path of `redirects` answers 302 to its URL. `latency_s` delays every answer (a round trip).
It records every path asked for. It binds a loopback address only (`host`, 127.0.0.1 unless another of 127/8 is
given) and stops with `close()` or on leaving a `with` block. Standard library only.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageHost:
    def __init__(self, images: dict[str, bytes], *, latency_s: float = 0.0, slow_s: float = 30.0,
                 huge_bytes: int = 2 * 2**20, redirects: dict[str, str] | None = None, host: str = "127.0.0.1"):
        self.images = images
        self.redirects = dict(redirects or {})
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.huge_bytes = huge_bytes
        self.requests: Counter = Counter()
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.server = _Server((host, 0), _Handler)
        self.server.host, self.server.daemon_threads = self, True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def image_url(self, name: str) -> str:
        return self.url(f"/img/{name}")

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "ImageHost":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 refuses connections when many download threads start at once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        host: ImageHost = self.server.host
        path = self.path.split("?")[0]
        with host.lock:
            host.requests[path] += 1
        if host.latency_s:
            time.sleep(host.latency_s)
        if path.startswith("/img/") and path[5:] in host.images:
            return self._send(200, host.images[path[5:]], "image/png")
        if path == "/slow":
            host.closing.wait(host.slow_s)
            return self._send(200, b"late", "image/png")
        if path == "/page":
            return self._send(200, b"<!DOCTYPE html><html><body>Not found, but 200</body></html>", "text/html")
        if path == "/huge":
            return self._send(200, PNG_MAGIC + b"\0" * (host.huge_bytes - len(PNG_MAGIC)), "image/png")
        if path == "/loop" or path in host.redirects:
            self.send_response(302)
            self.send_header("Location", host.redirects.get(path, "/loop"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/corrupt":
            good = next(iter(host.images.values()), PNG_MAGIC)
            return self._send(200, good[: max(len(PNG_MAGIC) + 8, len(good) // 3)], "image/png")
        return self._send(404, b"not found", "text/plain")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            pass
