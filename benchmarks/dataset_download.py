"""Dataset download: parallel files vs one at a time, and the shared cache vs fetching again, measured side by side.

`download_dataset` (huggingface_hub's `snapshot_download` underneath) fetches one webdataset split three times in this
one run, after an untimed warm-up download: one file at a time, then 8 files at a time (the default,
`download.MAX_PARALLEL`) into a fresh cache, then again into that cache, as a second pair on the same dataset would.
The Hub is `tests/loopback_hub.py` on 127.0.0.1: every request waits a fixed latency (a round trip), every
file body is throttled per connection (as a CDN limits each connection). Each shard holds different bytes, so no file
is a cached copy of another. It checks that both downloads hold the served bytes, each file fetched once, and that
the cached call asks the server nothing.

    uv run python benchmarks/dataset_download.py [--shards 16] [--shard-mib 2] [--mib-per-s 16] [--latency 0.05]
    uv run python benchmarks/dataset_download.py --smoke      # tiny shards: that the script still runs

Prints the setup line, then one line per way with its wall time and ratio (`... x faster`).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test doubles live there

from loopback_hub import Hub  # noqa: E402
from openclip_benchmark.datasets import download  # noqa: E402

REPO = "clip-benchmark/wds_bench"
SMOKE = dict(shards=4, shard_mib=0.25, mib_per_s=8.0, latency=0.02)


def timed_download(hub: Hub, cache: Path, parallel: int) -> tuple[float, Path]:
    download.MAX_PARALLEL = parallel
    source = download.dataset_source("bench", "wds_bench", base_url=hub.url)
    hub.requests.clear()
    started = time.perf_counter()
    folder = download.download_dataset(source, cache, progress=False)
    return time.perf_counter() - started, folder


def check(folder: Path, hub: Hub, files: dict[str, bytes]) -> None:
    got = {p: (folder / p).read_bytes() for p in files}
    assert got == files, "the download differs from what the Hub served"
    assert sorted(hub.gets()) == sorted(files), "a file was fetched more than once, or not at all"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--shard-mib", type=float, default=2.0)
    parser.add_argument("--mib-per-s", type=float, default=16.0, help="throughput of one connection")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before the server answers a request")
    parser.add_argument("--parallel", type=int, default=download.MAX_PARALLEL, help="files at a time, the fast way")
    parser.add_argument("--smoke", action="store_true", help="tiny shards: that the script still runs")
    args = parser.parse_args()
    if args.smoke:  # the smoke sizes become the defaults; options given explicitly still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
    size = int(args.shard_mib * 2**20)
    files = {f"test/{i}.tar": random.Random(i).randbytes(size) for i in range(args.shards)}
    files |= {"test/nshards.txt": f"{args.shards}\n".encode(), "classnames.txt": b"a\nb\n",
              "zeroshot_classification_templates.txt": b"a photo of a {c}.\n"}
    total = sum(len(b) for b in files.values()) / 2**20
    with Hub(files, REPO, latency_s=args.latency, mib_per_s=args.mib_per_s) as hub, \
            tempfile.TemporaryDirectory(prefix="download-") as tmp:
        timed_download(hub, Path(tmp) / "warm-up", args.parallel)  # untimed: imports, HTTP client, server threads
        one, folder = timed_download(hub, Path(tmp) / "one", 1)
        check(folder, hub, files)
        many, folder = timed_download(hub, Path(tmp) / "many", args.parallel)
        check(folder, hub, files)
        again, cached = timed_download(hub, Path(tmp) / "many", args.parallel)
        assert cached == folder and not hub.requests, "the cached call asked the server"
    print(f"{len(files)} files, {total:.1f} MiB, {args.mib_per_s:g} MiB/s per connection, {args.latency:g} s latency "
          f"per request, huggingface_hub on a loopback Hub")
    print(f"{'one file at a time':21}: {one:7.3f} s")
    print(f"{f'{args.parallel} files in parallel':21}: {many:7.3f} s   ({one / many:.1f}x faster)")
    print(f"{'cached (2nd pair)':21}: {again:7.3f} s   ({many / again:.0f}x faster than downloading again)")


if __name__ == "__main__":
    main()
