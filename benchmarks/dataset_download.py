"""Dataset download: parallel files vs one at a time, and the shared cache vs fetching again, measured side by side.

A loopback server plays the Hub: the tree API plus files whose every connection is throttled (as a CDN limits
each connection) after a fixed first-byte latency. Run: `uv run python benchmarks/dataset_download.py`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from openclip_benchmark.datasets import download

REPO = "clip-benchmark/wds_bench"


def serve(files: dict[str, bytes], mib_per_s: float, latency_s: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            if path.startswith(f"/api/datasets/{REPO}/tree/main"):
                folder = path.removeprefix(f"/api/datasets/{REPO}/tree/main").strip("/")
                body = json.dumps([{"type": "file", "path": p, "size": len(b)} for p, b in files.items()
                                   if (p.rpartition("/")[0] == folder)]).encode()
            else:
                time.sleep(latency_s)
                body = files[path.removeprefix(f"/datasets/{REPO}/resolve/main/")]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = 64 * 1024
            for start in range(0, len(body), step):  # throttled per connection
                self.wfile.write(body[start : start + step])
                time.sleep(step / (mib_per_s * 2**20))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def timed_download(url: str, folder: Path, parallel: int) -> float:
    download.MAX_PARALLEL = parallel
    source = download.dataset_source("bench", "wds_bench", base_url=url)
    started = time.perf_counter()
    download.download_dataset(source, folder, progress=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--shard-mib", type=float, default=2.0)
    parser.add_argument("--mib-per-s", type=float, default=16.0, help="throughput of one connection")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds to the first byte of a file")
    args = parser.parse_args()
    blob = bytes(range(256)) * int(args.shard_mib * 2**20 / 256)
    files = {f"test/{i}.tar": blob for i in range(args.shards)}
    files |= {"test/nshards.txt": f"{args.shards}\n".encode(), "classnames.txt": b"a\nb\n",
              "zeroshot_classification_templates.txt": b"a photo of a {c}.\n"}
    server = serve(files, args.mib_per_s, args.latency)
    url = f"http://127.0.0.1:{server.server_address[1]}/datasets/{REPO}"
    total = sum(len(b) for b in files.values()) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        one = timed_download(url, Path(tmp) / "one", 1)
        many = timed_download(url, Path(tmp) / "many", 8)
        again = timed_download(url, Path(tmp) / "many", 8)
    server.shutdown()
    print(f"{len(files)} files, {total:.0f} MiB, {args.mib_per_s:g} MiB/s per connection, {args.latency:g} s latency")
    print(f"one file at a time : {one:6.2f} s")
    print(f"8 files in parallel: {many:6.2f} s   ({one / many:.1f}x faster)")
    print(f"cached (2nd pair)  : {again:6.3f} s   ({many / again:.0f}x faster than downloading again)")


if __name__ == "__main__":
    main()
