"""Collect side by side: `benchmark sync` vs `aws s3 sync`, and `benchmark parse` vs `clip_benchmark build`.

One run, one loopback S3 server (moto's server mode, its own process) serving the same N result JSONs to both tools,
written as workers write them: grouped in shards (--per-shard results each), every result plus its shard's bundle.
`aws s3 sync` downloads everything in the bucket (results and bundles); `benchmark sync` takes the results from the
bundles. Then the bundles are deleted and a fresh `benchmark sync` shows the per-object way (one GET per result).
Prints a table, one row per step: our wall time, the other tool's, the speed-up (`...x`) and the other tool; asserts
the mirrors hold the same result bytes. `--smoke` (200 results) is what tests/test_benchmarks.py runs.

    uv run python benchmarks/sync_parse.py                                   # 10,000 results
    uv run python benchmarks/sync_parse.py --latency-ms 40 --skip-parse      # a WAN-like 40 ms per request
    BENCH_VERBOSE=1 uv run python benchmarks/sync_parse.py --n 2000          # + client and server CPU seconds
    uv run python benchmarks/sync_parse.py --smoke                           # that the script still runs

On one small machine the moto server's CPU time per request (~3 ms) bounds both sync tools alike, so the speed-up
comes from needing fewer requests (which also cuts R2 Class-B operations); BENCH_VERBOSE shows the CPU split.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test doubles live there
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(300):  # up to 30 s
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def start_latency_proxy(upstream: int, latency_s: float) -> int:
    """A loopback TCP proxy that holds every new connection for `latency_s` before relaying it, as a WAN round
    trip to R2/S3 would (moto closes each connection after one response, so that is once per request)."""
    import asyncio
    import threading

    async def pump(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        await asyncio.sleep(latency_s)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    port = free_port()
    ready = threading.Event()

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    ready.wait(10)
    return port


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(args: list[str], env: dict[str, str], server: int | None = None) -> float:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = server_cpu(server) if server else 0.0
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if os.environ.get("BENCH_VERBOSE"):
        client = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        served = server_cpu(server) - cpu0 if server else float("nan")
        print(f"  {Path(args[0]).name} {args[1]}: {seconds:.2f} s wall, client CPU {client:.2f} s, server CPU {served:.2f} s")
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def mirror_digest(folder: Path) -> dict[str, bytes]:
    """The mirrored results: no sync state, no bundles."""
    from openclip_benchmark.storage.layout import is_reserved

    out = {}
    for p in folder.rglob("*.json"):
        key = p.relative_to(folder).as_posix()
        if not is_reserved(key) and not any(part.startswith(".") for part in key.split("/")):
            out[key] = p.read_bytes()
    return out


def upload_shards(store, pairs, per_shard: int) -> int:
    """Results and bundles as workers put them: each result, then its shard's bundle (the worker's writer)."""
    from openclip_benchmark.storage.bundle import write_bundle
    from openclip_benchmark.core.jsonio import dumps_strict
    from openclip_benchmark.storage.layout import result_key
    from fixtures import synthetic_result

    def shard(start: int) -> None:
        written = {}
        for pair in pairs[start : start + per_shard]:
            written[result_key(pair)] = dumps_strict(synthetic_result(pair)).encode("utf-8")
            store.put(result_key(pair), written[result_key(pair)])
        write_bundle(store, f"shard-{start // per_shard:05d}", written)

    starts = range(0, len(pairs), per_shard)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(shard, starts))
    return len(starts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="result JSONs in the bucket")
    ap.add_argument("--workers", type=int, default=16, help="benchmark sync --workers")
    ap.add_argument("--per-shard", type=int, default=40, help="results per shard (one bundle each)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="extra latency per request (a WAN), through a proxy")
    ap.add_argument("--skip-parse", action="store_true", help="time the syncs only")
    ap.add_argument("--smoke", action="store_true", help="a few hundred results: that the script still runs")
    opts = ap.parse_args()
    if opts.smoke:  # smaller defaults; options given explicitly still win
        ap.set_defaults(n=200, per_shard=20)
        opts = ap.parse_args()

    import boto3
    from openclip_benchmark.storage.layout import BUNDLE_PREFIX
    from openclip_benchmark.storage.store import S3Store
    from fixtures import synthetic_pairs

    port = free_port()
    server = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    served = f"http://127.0.0.1:{start_latency_proxy(port, opts.latency_ms / 1000)}" if opts.latency_ms else endpoint
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        R2_ENDPOINT_URL=served,
        BENCHMARK_STORE="s3://bench-results/runs",
    )
    env.pop("AWS_PROFILE", None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="bench-results")
        pairs = synthetic_pairs(opts.n)
        t0 = time.perf_counter()
        shards = upload_shards(S3Store("s3://bench-results/runs", endpoint), pairs, opts.per_shard)
        print(f"uploaded {len(pairs)} results and {shards} bundles to {endpoint} in {time.perf_counter() - t0:.1f} s")

        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            ours = [str(BIN / "benchmark"), "sync", "--results", str(tmp / "ours"), "--tracker", str(tmp / "results.csv")]
            ours += ["--workers", str(opts.workers)]
            aws = [str(BIN / "aws"), "s3", "sync", "s3://bench-results/runs", str(tmp / "aws")]
            aws += ["--endpoint-url", served, "--only-show-errors", "--no-progress"]
            rows = []
            first_ours = timed(ours, env, server.pid)
            first_aws = timed(aws, env, server.pid)
            rows.append(("first sync", first_ours, first_aws, "aws s3 sync"))
            noop_ours = timed(ours, env, server.pid)
            noop_aws = timed(aws, env, server.pid)
            rows.append(("no-op sync", noop_ours, noop_aws, "aws s3 sync"))
            a, b = mirror_digest(tmp / "ours"), mirror_digest(tmp / "aws")
            assert len(a) == len(pairs) and a == b, "the two mirrors differ"
            assert len(list((tmp / "aws").rglob(f"{BUNDLE_PREFIX}*/*.json"))) == shards, "aws did not fetch the bundles"

            # the per-object way: the same results, no bundles left to use
            bundles = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket="bench-results", Prefix=f"runs/{BUNDLE_PREFIX}") for o in page.get("Contents", [])]
            for i in range(0, len(bundles), 1000):
                client.delete_objects(Bucket="bench-results", Delete={"Objects": [{"Key": k} for k in bundles[i : i + 1000]]})
            plain = [*ours[:2], "--results", str(tmp / "plain"), "--tracker", str(tmp / "plain.csv"), *ours[6:]]
            rows.append(("first sync without bundles", timed(plain, env, server.pid), first_aws, "aws s3 sync"))
            assert mirror_digest(tmp / "plain") == a, "the per-object mirror differs"
            if not opts.skip_parse:
                rows += compare_parse(tmp, env, len(pairs))

        where = f"{opts.latency_ms:g} ms added per request" if opts.latency_ms else "no added latency"
        print(f"\n{len(pairs)} results in {shards} shard bundles, moto S3 server on loopback ({where}), "
              f"benchmark sync --workers {opts.workers}\n")
        print(f"{'step':32} {'ours s':>9} {'theirs s':>9} {'speed-up':>9}  against")
        for name, mine, theirs, against in rows:
            print(f"{name:32} {mine:9.2f} {theirs:9.2f} {theirs / mine:8.1f}x  {against}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def compare_parse(tmp: Path, env: dict[str, str], n: int) -> list[tuple]:
    """`benchmark parse` vs `clip_benchmark build` on the mirrored files: whole commands, then the work alone."""
    from argparse import Namespace

    parse = [str(BIN / "benchmark"), "parse", "--results", str(tmp / "ours"), "--out", str(tmp / "parsed")]
    parse += ["--tracker", str(tmp / "results.csv")]
    leaf_dirs = sorted({str(Path(p).parent) for p in (tmp / "ours").rglob("*.json") if ".sync" not in p.name})
    build = [str(BIN / "clip_benchmark"), "build", *leaf_dirs, "--output", str(tmp / "build.csv")]
    rows = [("parse (CLI, incl. start-up)", timed(parse, env), timed(build, env), "clip_benchmark build")]

    # the work alone, in this process, after both tools' imports
    from clip_benchmark.cli import main_build

    from openclip_benchmark.catalog import load_catalog
    from openclip_benchmark.collect.parse import parse_results

    start = time.perf_counter()
    report = parse_results(tmp / "ours", tmp / "parsed2", catalog=load_catalog())
    work_ours = time.perf_counter() - start
    start = time.perf_counter()
    main_build(Namespace(files=leaf_dirs, output=str(tmp / "build2.csv")))
    work_build = time.perf_counter() - start
    assert report.results == n
    rows.append(("parse (work only, in-process)", work_ours, work_build, "clip_benchmark build"))
    return rows


if __name__ == "__main__":
    main()
