"""`benchmark similarity`: every image-caption pair scored with a tiny model; the statistics, ranks, dumps and exports
follow from the embeddings; the recalls are clip_benchmark's on the same folder; 2 gloo ranks write the same bytes as
one process, and so do SkyPilot nodes with their collect step; a dead rank ends the run; bad input is one `error:`
line and exit 2. (`similarity --csv` is tested in test_own_data, beside `dataset add`.)"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fixtures import HANG_S, make_classification_wds, make_tiny_model, sample_image
from loopback_hub import Hub
from openclip_benchmark.catalog import load_catalog, mapping_path
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.wds import write_shards
from openclip_benchmark.pipeline.similarity import Source, similarity
from openclip_benchmark.similarity import score, stats

IMAGES = 12
LONG = "long " * 90
SETTINGS = dict(batch_size=5, num_workers=0, precision="fp32", heatmap_size=4, distractors=3, export_embeddings=True,
                seed=7, timeout_s=HANG_S)


def _bench(*args, code=0):
    out = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    assert out.exit_code == code, out.output
    return out.output


def _captions(i: int) -> list[str]:
    return [f"photo {i} of the set"] + ([f"another view of photo {i}"] if i % 3 == 0 else []) + ([LONG] if i == 4 else [])


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    samples = [{"png": sample_image(i), "txt": "\n".join(_captions(i)).encode(), "url": f"http://x.org/{i}.png".encode()}
               for i in range(IMAGES)]
    write_shards(root / "wds_pics", samples, 3)
    (root / "wds_pics" / "dataset_type.txt").write_text("retrieval\n")
    model = make_tiny_model(root, "tiny")
    args = ["similarity", "-m", model, "-d", str(root / "wds_pics"), "--batch-size", "5", "--num-workers", "0",
            "--precision", "fp32", "--heatmap-size", "4", "--distractors", "3", "--export-embeddings", "--seed", "7"]
    shown = _bench(*args, "--out", str(root / "one"))
    return dict(root=root, model=model, shown=shown, folder=root / "wds_pics", one=root / "one")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_results_summary_and_exports_follow_from_the_embeddings(scored):
    one = scored["one"]
    results = pd.read_csv(one / "similarity_results.csv", keep_default_na=False)
    captions = [c for i in range(IMAGES) for c in _captions(i)]
    assert results["caption"].tolist() == [" ".join(c.split()) if c != LONG else c for c in captions]
    assert results["url"].tolist() == [f"http://x.org/{i}.png" for i in range(IMAGES) for _ in _captions(i)]
    assert results["truncated"].sum() == 1 and results.loc[results["truncated"] == 1, "image"].tolist() == [4]
    (emb,) = (one / "embeddings").iterdir()
    img = np.load(emb / "img_emb" / "img_emb_0.npy")
    txt = np.load(emb / "text_emb" / "text_emb_0.npy")
    assert img.dtype == txt.dtype == np.float16 and img.shape[0] == IMAGES and txt.shape[0] == len(captions)
    assert np.allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1, atol=2e-3)
    meta = pd.read_parquet(emb / "metadata" / "metadata_0.parquet")
    assert meta["url"].tolist() == [f"http://x.org/{i}.png" for i in range(IMAGES)]
    assert pd.read_parquet(emb / "metadata" / "text_metadata_0.parquet")["image"].tolist() == results["image"].tolist()
    sims = (txt.astype(np.float32) @ img.astype(np.float32).T)
    own = sims[np.arange(len(captions)), results["image"]]
    assert np.allclose(results["similarity"], own, atol=3e-3)  # float16 export against float32 scores
    assert (results["rank"] >= 1).all() and (results["rank"] <= len(captions)).all()

    with open(one / "similarity_summary.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    values = results["similarity"].to_numpy()
    assert abs(float(row["mean"]) - values.mean()) < 1e-5 and abs(float(row["median"]) - np.median(values)) < 1e-5
    assert float(row["share_under_threshold"]) == pytest.approx((values < 0.2).mean())
    assert row["truncated"] == "1" and row["images"] == str(IMAGES) and row["captions"] == str(len(captions))
    assert "similarity: 12 images" in scored["shown"] and "I@1" in scored["shown"]
    for name in ("similarity_distribution.png", "similarity_heatmap.png"):
        assert (one / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    groups = (one / "similarity_distractors.txt").read_text().split("# model=")[1:]
    assert len(groups) == IMAGES
    for i, group in enumerate(groups):
        header, *lines = group.splitlines()
        assert f"image={i} own={len(_captions(i))} distractors=3" in header
        assert len(lines) == len(_captions(i)) + 3 and all(len(line.split("\t")) == 2 for line in lines)
        assert not {line.split("\t")[1] for line in lines[len(_captions(i)):]} & set(_captions(i))


def test_recalls_are_clip_benchmarks_on_the_same_folder(scored):
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_retrieval
    from clip_benchmark.models import load_clip

    net, transform, tokenizer = load_clip("open_clip", scored["model"], "", None, device="cpu")
    net.eval()
    ds = build_dataset("wds/pics", root=str(scored["folder"]), transform=transform, split="test",
                       task="zeroshot_retrieval")
    loader = torch.utils.data.DataLoader(ds.batched(5), batch_size=None, num_workers=0)
    expected = zeroshot_retrieval.evaluate(net, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    with open(scored["one"] / "similarity_summary.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert {k: row[k] for k in expected} == {k: f"{v:.6f}" for k, v in expected.items()}


def test_two_gloo_ranks_write_the_one_process_bytes(scored, tmp_path):
    rows = similarity(load_catalog(), [scored["model"]], Source(dataset=str(scored["folder"])), tmp_path / "two",
                      gpus=2, cache_dir=str(tmp_path / "cache"), device="cpu", **SETTINGS).rows
    assert len(rows) == 1
    one, two = _files(scored["one"]), _files(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 9
    assert [name for name in one if one[name] != two[name]] == []


def test_a_rank_that_dies_ends_the_run(scored, tmp_path, monkeypatch):
    real = score.encode_part

    def dying(loaded, index, batch_size, num_workers, rank, world):
        if rank == 1:
            os._exit(9)
        return real(loaded, index, batch_size, num_workers, rank, world)

    monkeypatch.setattr(score, "encode_part", dying)  # forked ranks inherit it
    with pytest.raises(BenchmarkError, match="a rank failed"):
        similarity(load_catalog(), [scored["model"]], Source(dataset=str(scored["folder"])), tmp_path / "dead",
                   gpus=2, cache_dir=str(tmp_path / "cache"), device="cpu", **SETTINGS)
    assert not (tmp_path / "dead" / "similarity_results.csv").exists()


def test_bad_input_is_one_error_line(scored, tmp_path):
    make_classification_wds(tmp_path, "cls", n=4)
    model, folder = scored["model"], str(scored["folder"])
    cases = {
        "unknown dataset": (["-m", model, "-d", "no_such_set"], "unknown dataset"),
        "unknown model": (["-m", "NoSuchNet:tag", "-d", folder], "unknown model"),
        "missing local model": (["-m", f"local-dir:{tmp_path}/nothing", "-d", folder], "cannot be loaded"),
        "not retrieval": (["-m", model, "-d", str(tmp_path / "wds_cls")], "classification data"),
        "heatmap size": (["-m", model, "-d", folder, "--heatmap-size", "0"], "--heatmap-size must be at least 1"),
        "distractors": (["-m", model, "-d", folder, "--distractors", "-1"], "--distractors must be at least 0"),
        "both sources": (["-m", model, "-d", folder, "--csv", "x.csv"], "either --dataset"),
    }
    for what, (args, message) in cases.items():
        out = _bench("similarity", *args, "--out", str(tmp_path / "o"), code=2)
        assert out.startswith("error: ") and message in out and out.count("\n") == 1, (what, out)
    assert not (tmp_path / "o").exists()


def test_a_catalog_classification_set_is_refused_before_any_download(scored, tmp_path):
    """The catalog knows cifar10's task: nothing is asked of the Hub (here a loopback one the mapping points to)."""
    with Hub({}, "clip-benchmark/wds_vtab-cifar10") as hub:
        data = json.loads(mapping_path().read_text())
        data["datasets"]["cifar10"]["url"] = hub.url
        (tmp_path / "m.json").write_text(json.dumps(data))
        out = _bench("similarity", "-m", scored["model"], "-d", "cifar10", "--dataset-mapping", str(tmp_path / "m.json"),
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "o"), code=2)
        assert hub.requests == []
    assert "cifar10 holds classification data" in out and out.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_ranks_and_draws_by_brute_force():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(11, 4)).astype(np.float32)
    text_image = np.array([0, 0, 1, 2, 2, 2, 3, 4, 5, 6, 6])
    scores, ranks = stats.pair_scores(img, txt, text_image)
    full = txt @ img.T
    for j, i in enumerate(text_image):
        assert scores[j] == full[j, i] and ranks[j] == 1 + (full[:, i] > full[j, i]).sum()
    drawn = stats.draw_distractors(text_image, 7, 3, seed=1)
    assert all(len(d) == 3 and len(set(d)) == 3 and not set(text_image[d]) & {i} for i, d in enumerate(drawn))
    assert [d.tolist() for d in drawn] == [d.tolist() for d in stats.draw_distractors(text_image, 7, 3, seed=1)]
    assert stats.sample_images(7, 3, 0).tolist() == sorted(set(stats.sample_images(7, 3, 0).tolist()))
    assert stats.sample_images(3, 5, 0).tolist() == [0, 1, 2]


SETTING_ARGS = ["--batch-size", "5", "--num-workers", "0", "--precision", "fp32", "--heatmap-size", "4",
                "--distractors", "3", "--export-embeddings", "--seed", "7"]


def test_skypilot_nodes_then_collect_give_the_one_process_bytes(scored, s3_bucket, tmp_path, monkeypatch):
    """The task as SkyPilot's schema reads it (only the submission is faked); the two nodes run here, against a moto
    S3 server on loopback, with SkyPilot's rank variables; the collect step writes the one-process bytes."""
    import re

    import sky
    import yaml

    sent = []
    monkeypatch.setattr(sky.jobs, "launch", lambda task, **kw: sent.append(task) or "request")
    monkeypatch.setattr(sky, "get", lambda request: [42])
    store = f"s3://{s3_bucket}/sim"
    shown = _bench("similarity", "-m", scored["model"], "-d", str(scored["folder"]), *SETTING_ARGS, "--backend",
                   "skypilot", "--nodes", "2", "--gpus-per-node", "1", "--store", store, "--out", str(tmp_path / "l"))
    run_id = re.search(r"^run (\S+):", shown, re.MULTILINE)[1]
    assert "submitted as job 42" in shown and len(sent) == 1 and sent[0].num_nodes == 2
    (path,) = (tmp_path / "l").glob("*.yaml")
    text = path.read_text()
    config = yaml.safe_load(text)
    sky.Task.from_yaml_config(yaml.safe_load(text))  # SkyPilot's own schema, offline (it consumes the dict)
    assert config["num_nodes"] == 2 and config["envs"] == {"SIMILARITY_STORE": store, "SIMILARITY_RUN": run_id}
    assert set(config["secrets"].values()) == {None} and "testing" not in text
    assert scored["model"] not in config["run"] + config["setup"] and "benchmark similarity-node" in config["run"]

    collect = ["similarity", "--collect", run_id, "--store", store, "--out", str(tmp_path / "merged")]
    assert "rank(s) 0, 1 have not written" in _bench(*collect, code=2)
    monkeypatch.setenv("SIMILARITY_STORE", store)
    monkeypatch.setenv("SIMILARITY_RUN", run_id)
    monkeypatch.setenv("SKYPILOT_NUM_NODES", "2")
    for node in ("1", "0"):
        monkeypatch.setenv("SKYPILOT_NODE_RANK", node)
        assert "1 rank(s) wrote their parts" in _bench("similarity-node")
    _bench(*collect)
    one, merged = _files(scored["one"]), _files(tmp_path / "merged")
    assert sorted(one) == sorted(merged) and [name for name in one if one[name] != merged[name]] == []
