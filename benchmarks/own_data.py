"""Your own data: `dataset add` (img2dataset underneath) against a plain sequential `requests` loop, side by side.

Both fetch the same N distinct PNGs from `tests/loopback_images.py` on 127.0.0.1, which waits a fixed
latency before every answer (a round trip to a web host). `dataset add` is timed whole: reading the table, starting
img2dataset's processes, downloading, checking every body and writing the webdataset; the loop only downloads.
It checks that both got every image and that a second `dataset add` asks the server nothing.

Then scoring: `similarity` (the use case the command calls) over the added set with a tiny OpenCLIP model, on one
process and on `--ranks` CPU ranks (torch.distributed, gloo), each timed whole (model load, reading, encoding,
merging, every output file); it checks that both wrote the same bytes.

    uv run python benchmarks/own_data.py [--images 1000] [--latency-ms 50] [--processes N] [--threads 64] [--ranks 2]
    uv run python benchmarks/own_data.py --smoke      # 40 images: that the script still runs

Prints the setup line, then one line per way with its wall time, images/s (pairs/s for scoring) and the ratio.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test doubles live there

from fixtures import make_tiny_model, sample_image  # noqa: E402
from loopback_images import ImageHost  # noqa: E402
from openclip_benchmark.catalog import load_catalog  # noqa: E402
from openclip_benchmark.datasets.captions import FetchOptions, build_caption_dataset, fetch_processes  # noqa: E402
from openclip_benchmark.pipeline.similarity import Source, similarity  # noqa: E402


def sequential(urls: list[str]) -> float:
    import requests

    started = time.perf_counter()
    with requests.Session() as session:
        for url in urls:
            response = session.get(url, timeout=10)
            response.raise_for_status()
            assert response.content
    return time.perf_counter() - started


def scoring(folder: Path, tmp: Path, ranks: int) -> tuple[float, float, int]:
    """Seconds of `similarity` on one process and on `ranks` gloo ranks, and the pairs scored."""
    model = make_tiny_model(tmp, "tiny")  # imports open_clip before either timing
    catalog, timed = load_catalog(), []
    for gpus in (1, 1, ranks):  # the first, untimed, loads what the model load and the metrics import lazily
        started = time.perf_counter()
        rows = similarity(catalog, [model], Source(dataset=str(folder)), tmp / f"sim{gpus}", gpus=gpus,
                          cache_dir=str(tmp / "cache"), device="cpu", precision="fp32", num_workers=0).rows
        timed.append(time.perf_counter() - started)
    timed = timed[1:]
    same = [(tmp / f"sim{gpus}" / "similarity_results.csv").read_bytes() for gpus in (1, ranks)]
    assert same[0] == same[1], "the ranks' merged results differ from one process's"
    return timed[0], timed[1], int(rows[0]["captions"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--processes", type=int, default=None, help="img2dataset processes (default: dataset add's)")
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--ranks", type=int, default=2, help="CPU ranks (gloo) of the scoring run")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.images = 40
    processes = args.processes or fetch_processes(args.images)
    print(f"{args.images} images, {args.latency_ms:g} ms per request, dataset add with {processes} process(es) x "
          f"{args.threads} threads")
    with tempfile.TemporaryDirectory() as tmp, \
            ImageHost({f"{i}.png": sample_image(i) for i in range(args.images)}, latency_s=args.latency_ms / 1000) as host:
        urls = [host.image_url(f"{i}.png") for i in range(args.images)]
        table = Path(tmp) / "data.csv"
        with open(table, "w", newline="") as fh:
            csv.writer(fh).writerows([("url", "caption"), *((u, f"picture {i}") for i, u in enumerate(urls))])
        options = FetchOptions(processes=args.processes, threads=args.threads, retries=0,
                               allow_private_urls=True)  # the host is on loopback
        started = time.perf_counter()
        built = build_caption_dataset("bench", table, Path(tmp) / "datasets", options=options)
        ours = time.perf_counter() - started
        assert built.images == args.images, built.failed
        host.requests.clear()
        again = build_caption_dataset("bench", table, Path(tmp) / "datasets", options=options)
        assert again.fetched == 0 and not host.requests and not again.rebuilt
        loop = sequential(urls)
        one, many, pairs = scoring(built.folder, Path(tmp), args.ranks)
    n = args.images
    print(f"sequential requests loop : {loop:8.2f} s  {n / loop:8.1f} images/s")
    print(f"dataset add (whole)      : {ours:8.2f} s  {n / ours:8.1f} images/s  ({loop / ours:.1f}x faster)")
    print(f"  of which img2dataset   : {built.fetch_seconds:8.2f} s  {built.images_per_s:8.1f} images/s  "
          f"(process start-up included)")
    print("second dataset add       : 0 requests, webdataset unchanged")
    print(f"similarity, 1 process    : {one:8.2f} s  {pairs / one:8.1f} pairs/s")
    print(f"similarity, {args.ranks} gloo ranks : {many:8.2f} s  {pairs / many:8.1f} pairs/s  "
          f"(ratio ranks / one process: {one / many:.2f}, same bytes)")


if __name__ == "__main__":
    main()
