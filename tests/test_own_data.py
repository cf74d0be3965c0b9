"""`benchmark dataset add|list|remove`: a table of URLs and captions, served by a loopback image host with every
fault of a real web, becomes a retrieval webdataset that clip_benchmark's own loader reads and `benchmark run`
evaluates with clip_benchmark's recalls; a re-run fetches only what is missing and rewrites nothing."""

from __future__ import annotations

import csv
import json
import os
import urllib.error
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fixtures import make_tiny_model, sample_image
from loopback_images import ImageHost
from openclip_benchmark.catalog import mapping_path
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.datasets import public_urls
from openclip_benchmark.datasets.captions import fetch_processes, remove_caption_dataset, remove_inside

GOOD = 12  # recall@10 needs at least 10 images
FAULTS = {"/missing": "http 404", "/slow": "timeout", "/page": "html, not an image", "/huge": "over --max-bytes",
          "/loop": "redirect loop", "/corrupt": "corrupt image"}
# a timeout far above a loopback answer's time on a loaded machine (`/slow` answers only when the host closes)
FAST = ["--processes", "1", "--threads", "16", "--timeout", "3", "--retries", "0", "--max-bytes", "200000",
        "--shard-size", "5", "--allow-private-urls"]  # the image host is on loopback


def _bench(*args, code=0):
    out = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert out.exit_code == code, out.output
    return out.output


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    images = {f"{i}.png": sample_image(i) for i in range(GOOD)}
    with pytest.MonkeyPatch.context() as env, ImageHost(images, huge_bytes=300_000) as host:
        rows = [(host.image_url(f"{i}.png"), f"photo {i} of the set") for i in range(GOOD)]
        rows += [(host.image_url("0.png"), "another caption of photo 0")] * 2  # the second is a duplicate row
        rows += [(host.url(path), f"fault {path}") for path in FAULTS]
        rows += [("  ", "a blank url"), (host.image_url("1.png"), " "), ("ftp://example.org/a.png", "not http"),
                 (host.image_url("2.png"), "long " * 90)]
        env.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmpdir")))  # img2dataset's processes inherit it
        table = root / "data.csv"
        with open(table, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("image", "text"), *rows])
        mapping = root / "mine.json"
        args = ["dataset", "add", "mine", "--csv", str(table), "--url-col", "image", "--caption-col", "text",
                "--root", str(root / "datasets"), "--dataset-mapping", str(mapping), *FAST]
        first = _bench(*args)
        requests_first = dict(host.requests)
        tars = {p.name: p.stat().st_mtime_ns for p in (root / "datasets" / "wds_mine" / "test").iterdir()}
        second = _bench(*args)
        requests_second = {k: v - requests_first.get(k, 0) for k, v in host.requests.items()}
        left_in_tmpdir = sorted(p.name for p in Path(os.environ["TMPDIR"]).iterdir())
    return dict(root=root, mapping=mapping, first=first, second=second, tars=tars, left_in_tmpdir=left_in_tmpdir,
                requests_second={k: v for k, v in requests_second.items() if v})


def test_every_fault_is_a_row_error_with_its_reason(added):
    status = pd.read_csv(added["root"] / "datasets" / "wds_mine.status.csv", keep_default_na=False)
    reasons = dict(zip(status["caption"], status["reason"]))
    assert status["error"].tolist().count("") == GOOD + 2, status.to_string()
    for path, reason in FAULTS.items():
        assert reasons[f"fault {path}"] == reason
    assert reasons["a blank url"] == "blank url" and reasons["not http"] == "not an http(s) url"
    assert status.loc[status["caption"] == "", "reason"].tolist() == ["blank caption"]
    assert status["reason"].tolist().count("duplicate row") == 1
    assert (status["status"] == "ok").sum() == GOOD + 2 and status["truncated"].sum() == 1
    assert pd.read_parquet(added["root"] / "datasets" / "wds_mine.status.parquet").equals(
        pd.read_csv(added["root"] / "datasets" / "wds_mine.status.csv", keep_default_na=False))
    for reason in FAULTS.values():
        assert reason in added["first"]
    assert f"{GOOD + 2} ok" in added["first"] and "1 captions longer than 77 tokens" in added["first"]


def test_nothing_is_left_in_tmpdir(added):
    assert added["left_in_tmpdir"] == []  # wandb's folders (img2dataset imports it) went with the run's work folder


def test_clip_benchmark_reads_the_webdataset_with_captions_grouped(added):
    from clip_benchmark.datasets.builder import build_dataset

    folder = added["root"] / "datasets" / "wds_mine"
    assert (folder / "dataset_type.txt").read_text().strip() == "retrieval"
    assert (folder / "test" / "nshards.txt").read_text().strip() == "3"
    ds = build_dataset("wds/mine", root=str(folder), transform=lambda im: im.size, split="test",
                       task="zeroshot_retrieval")
    samples = list(ds)
    assert len(samples) == GOOD and all(size == (32, 32) for size, _ in samples)
    assert samples[0][1] == ["photo 0 of the set", "another caption of photo 0"]
    assert samples[2][1] == ["photo 2 of the set", " ".join(["long"] * 90)]


def test_a_rerun_fetches_only_what_failed_and_rewrites_nothing(added):
    assert set(added["requests_second"]) == set(FAULTS)
    assert not any(path.startswith("/img/") for path in added["requests_second"])
    tars = {p.name: p.stat().st_mtime_ns for p in (added["root"] / "datasets" / "wds_mine" / "test").iterdir()}
    assert tars == added["tars"] and "unchanged" in added["second"]


def test_the_mapping_lists_it_and_run_gives_clip_benchmarks_recalls(added, tmp_path):
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_retrieval
    from clip_benchmark.models import load_clip

    mapping = json.loads(added["mapping"].read_text())
    assert "cifar10" in mapping["datasets"] and mapping["datasets"]["mine"]["size"] == GOOD
    assert "mine" in _bench("dataset", "list", "--dataset-mapping", str(added["mapping"]))
    model = make_tiny_model(tmp_path, "tiny")
    _bench("run", "-m", model, "-d", "mine", "--dataset-mapping", str(added["mapping"]), "--store",
           str(tmp_path / "results"), "--precision", "fp32", "--batch-size", "5", "--num-workers", "0",
           "--tracker", str(tmp_path / "none.csv"), "--no-progress")
    results = tmp_path / "results"
    (result,) = [json.loads(p.read_text()) for p in results.rglob("*.json")
                 if not p.relative_to(results).parts[0].startswith("_")]  # manifests and bundles
    net, transform, tokenizer = load_clip("open_clip", model, "", None, device="cpu")
    net.eval()
    ds = build_dataset("wds/mine", root=str(added["root"] / "datasets" / "wds_mine"), transform=transform,
                       split="test", task="zeroshot_retrieval")
    loader = torch.utils.data.DataLoader(ds.batched(5), batch_size=None, num_workers=0)
    expected = zeroshot_retrieval.evaluate(net, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    assert result["dataset"] == "mine" and result["metrics"] == expected


def test_bad_tables_and_names_are_one_error_line(tmp_path):
    bad = {"empty.csv": b"", "latin1.csv": "url,caption\nhttp://a/b.png,caf\xe9\n".encode("latin-1"),
           "columns.csv": b"link,caption\nhttp://a/b.png,x\n", "header.csv": b"url,caption\n"}
    expect = {"empty.csv": "is empty", "latin1.csv": "not UTF-8", "columns.csv": "no column 'url'",
              "header.csv": "no rows"}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        out = _bench("dataset", "add", "x", "--csv", str(tmp_path / name), "--root", str(tmp_path / "d"), code=2)
        assert out.startswith("error: ") and expect[name] in out and out.count("\n") == 1, out
    out = _bench("dataset", "add", "mscoco_captions", "--csv", str(tmp_path / "header.csv"), code=2)
    assert "catalog's dataset" in out
    assert not (tmp_path / "d").exists()


def test_similarity_csv_adds_the_set_then_remove_drops_entry_and_files(tmp_path):
    """`similarity --csv` adds the table through `dataset add`'s use case (one img2dataset run serves both checks)."""
    model = make_tiny_model(tmp_path, "tiny")
    with ImageHost({f"{i}.png": sample_image(i) for i in range(2)}) as host:
        (tmp_path / "t.tsv").write_text("url\tcaption\n" + "".join(
            f"{host.image_url(f'{i}.png')}\tpicture {i}\n" for i in range(2)))
        _bench("similarity", "-m", model, "--csv", str(tmp_path / "t.tsv"), "--name", "two", "--root",
               str(tmp_path / "d"), "--out", str(tmp_path / "sim"), "--num-workers", "0", "--allow-private-urls")
        urls = [host.image_url(f"{i}.png") for i in range(2)]
    assert pd.read_csv(tmp_path / "sim" / "similarity_results.csv")["url"].tolist() == urls
    summary = pd.read_csv(tmp_path / "sim" / "similarity_summary.csv", keep_default_na=False)
    assert summary["image_retrieval_recall@1"].tolist() != [""] and summary["image_retrieval_recall@5"].tolist() == [""]
    mapping = tmp_path / "d" / "dataset_mapping.json"
    assert "two" in json.loads(mapping.read_text())["datasets"]
    _bench("dataset", "remove", "two", "--root", str(tmp_path / "d"))
    assert "two" not in json.loads(mapping.read_text())["datasets"]
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["dataset_mapping.json", "dataset_mapping.json.lock"]
    assert "unknown dataset of your own" in _bench("dataset", "remove", "two", "--root", str(tmp_path / "d"), code=2)


def test_init_then_run_puts_the_set_in_the_leaderboard_and_report(added, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mapping = ["--dataset-mapping", str(added["mapping"])]
    model = make_tiny_model(tmp_path, "tiny")
    _bench("init", "-m", model, "-d", "mine", *mapping)
    _bench("run", "-m", model, "-d", "mine", *mapping, "--store", "results", "--precision", "fp32", "--batch-size", "5",
           "--num-workers", "0", "--no-progress")
    assert "succeeded" in (tmp_path / "results.csv").read_text()
    _bench("parse", "--out", "metrics")
    with open(tmp_path / "metrics" / "retrieval_metrics.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    with open(tmp_path / "metrics" / "leaderboard.csv", newline="") as fh:
        (board,) = list(csv.DictReader(fh))
    assert row["dataset"] == "mine" and float(board["mine"]) == float(row["image_retrieval_recall@5"])
    _bench("report", "--metrics", "metrics", "--out", "report")
    assert "mine" in (tmp_path / "report" / "index.html").read_text()


def test_small_tables_fetch_on_one_process_and_large_ones_on_up_to_four(monkeypatch):
    """A spawned img2dataset process costs seconds to start: one per 5,000 URLs, never more than the CPUs or 4."""
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [fetch_processes(n) for n in (0, 1, 5000, 5001, 15000, 10**6)] == [1, 1, 1, 2, 3, 4]
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert fetch_processes(10**6) == 2


# ---------------------------------------------------------------- safety: removal, order of checks, addresses


def _mapping_with(path, name: str, folder, wds_name: str = "wds_x") -> None:
    """A mapping someone else wrote (or shared through BENCHMARK_DATASETS): the catalog plus one entry of your own."""
    data = json.loads(mapping_path().read_text())
    data["datasets"][name] = {"wds_name": wds_name, "url": folder.as_uri(), "task": "zeroshot_retrieval", "size": 1,
                              "captions_per_image": 1, "metric": "image_retrieval_recall@5", "collections": ["own"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _precious(folder):
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("keep me")
    return folder


def test_remove_never_deletes_outside_the_datasets_root(tmp_path):
    root = tmp_path / "datasets"
    (root / "wds_a").mkdir(parents=True)
    victim = _precious(tmp_path / "victim")
    mapping = root / "dataset_mapping.json"
    _mapping_with(mapping, "a/../../victim", root / "wds_a")  # a key that climbs out of the root
    out = _bench("dataset", "remove", "a/../../victim", "--root", str(root), code=2)
    assert out.startswith("error: ") and "'a/../../victim' is not a relative name" in out and out.count("\n") == 1
    assert "is not a relative name" in _bench("datasets", "--dataset-mapping", str(mapping), code=2)  # every reader
    outside = _precious(tmp_path / "wds_mine")  # a safe key whose folder is not in the root
    _mapping_with(mapping, "mine", outside, wds_name="wds_mine")
    out = _bench("dataset", "remove", "mine", "--root", str(root), code=2)
    assert "not in the datasets root" in out and "mine" in json.loads(mapping.read_text())["datasets"]
    assert (victim / "precious.txt").read_text() == (outside / "precious.txt").read_text() == "keep me"


def test_the_removal_helper_refuses_a_link_out_of_the_root(tmp_path):
    root, victim = tmp_path / "datasets", _precious(tmp_path / "victim")
    root.mkdir()
    (root / "wds_x").symlink_to(victim, target_is_directory=True)
    with pytest.raises(BenchmarkError, match="not inside the datasets root"):
        remove_caption_dataset("x", root)
    with pytest.raises(BenchmarkError, match="not inside the datasets root"):
        remove_inside(root, root)
    assert (victim / "precious.txt").is_file()


def test_a_refused_remove_writes_nothing_not_even_a_lock(tmp_path):
    _bench("dataset", "remove", "nope", "--root", str(tmp_path / "fresh"), code=2)
    assert not (tmp_path / "fresh").exists()
    mapping = tmp_path / "d" / "dataset_mapping.json"
    _mapping_with(mapping, "mine", tmp_path / "d" / "wds_mine")
    assert "unknown dataset of your own 'nope'" in _bench("dataset", "remove", "nope", "--root", str(tmp_path / "d"),
                                                          code=2)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["dataset_mapping.json"]


def test_add_checks_the_name_mapping_and_root_before_fetching_anything(tmp_path):
    (tmp_path / "bad.json").write_text('{"datasets": ')
    (tmp_path / "a_file").write_text("not a folder")
    with ImageHost({"0.png": sample_image(0)}) as host:
        (tmp_path / "t.csv").write_text(f"url,caption\n{host.image_url('0.png')},a photo\n")
        cases = {"mapping not JSON": ["--dataset-mapping", str(tmp_path / "bad.json")],
                 "the shipped mapping": ["--dataset-mapping", str(mapping_path())],
                 "root is a file": ["--root", str(tmp_path / "a_file")],
                 "mapping beside a file": ["--dataset-mapping", str(tmp_path / "a_file" / "m.json")]}
        for case, args in cases.items():
            out = _bench("dataset", "add", "mine", "--csv", str(tmp_path / "t.csv"), "--root", str(tmp_path / "r"),
                         *args, code=2)
            assert out.startswith("error: ") and out.count("\n") == 1 and "unexpected" not in out, (case, out)
        assert dict(host.requests) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "bad.json", "t.csv"]


def test_urls_on_private_link_local_and_loopback_addresses_are_refused_by_default(tmp_path):
    with ImageHost({f"{i}.png": sample_image(i) for i in range(2)}) as host:
        rows = [host.image_url("0.png"), "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                "http://[::1]:9/a.png", "http://10.0.0.1:9/a.png", "http://localhost:9/a.png"]
        (tmp_path / "t.csv").write_text("url,caption\n" + "".join(f"{url},row {i}\n" for i, url in enumerate(rows)))
        out = _bench("dataset", "add", "mine", "--csv", str(tmp_path / "t.csv"), "--root", str(tmp_path / "d"),
                     "--processes", "1", "--timeout", "3", "--retries", "0", code=3)
        assert dict(host.requests) == {}  # refused before a connection
    status = pd.read_csv(tmp_path / "d" / "wds_mine.status.csv", keep_default_na=False)
    assert status["reason"].tolist() == ["non-public address"] * len(rows) and f"{len(rows)}  non-public address" in out
    assert "169.254.169.254 (link-local)" in status["error"][1] and "--allow-private-urls" in status["error"][1]


def test_each_redirect_is_checked_again(monkeypatch):
    """img2dataset follows redirects itself: every hop is a new connection through the same check. Here 127.0.0.1
    stands for a public host and 127.0.0.2 for the metadata service."""
    monkeypatch.setattr(public_urls, "address_kind", lambda address: None if address == "127.0.0.1" else "private")
    with ImageHost({"0.png": sample_image(0)}, host="127.0.0.2") as inner:
        with ImageHost({"0.png": sample_image(0)}, redirects={"/go": inner.image_url("0.png")}) as outer:
            assert public_urls.public_opener().open(outer.image_url("0.png"), timeout=10).read() == sample_image(0)
            with pytest.raises(urllib.error.URLError, match="non-public address: 127.0.0.2 resolves to 127.0.0.2"):
                public_urls.public_opener().open(outer.url("/go"), timeout=10)
            assert outer.requests["/go"] == 1 and dict(inner.requests) == {}


@pytest.mark.parametrize("address,kind", [
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"), ("100.100.100.200", "non-global"),
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("8.8.8.8", None), ("2606:4700:4700::1111", None)])
def test_address_kinds(address, kind):
    assert public_urls.address_kind(address) == kind
