"""DataComp's suite: the catalog against its task list, its task-specific metrics against its definitions (hand counts
on hand-built cases, wilds as the oracle where DataComp calls wilds), per-sample metadata from webdatasets in its
layout through the worker into the samples and the intervals, and its 38-task average against open_clip's table."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.collect import datacomp, published
from openclip_benchmark.collect.intervals import intervals, metric_outcomes
from openclip_benchmark.collect.parse import load_samples, parse_results, read_samples_file, read_table
from openclip_benchmark.core.samples import result_digest
from openclip_benchmark.core.manifest import Manifest, RunSettings, dataset_entries
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.core.records import make_result, read_record
from openclip_benchmark.core.wds import write_shards
from openclip_benchmark.datasets.winogavil import write_winogavil
from openclip_benchmark.storage.layout import failure_key, result_key
from openclip_benchmark.storage.store import open_store
from fixtures import sample_image
from openclip_benchmark.synthetic import TEMPLATES, make_tiny_model
from openclip_benchmark.tasks import fairness, wilds_classification, winogavil
from openclip_benchmark.tasks.statistics import draw_indices
from openclip_benchmark.worker import run_shard

ROOT = Path(__file__).resolve().parents[1]
TASKLIST = yaml.safe_load((ROOT / "openclip_benchmark" / "data" / "published" / "datacomp_tasklist.yml").read_text())
CATALOG = load_catalog()
HF = "https://huggingface.co/datasets/"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


# ---------------------------------------------------------------- the catalog against DataComp's task list


def test_the_datacomp_collection_is_its_task_list_38_of_38():
    with open(ROOT / "openclip_benchmark" / "data" / "published" / "openclip_results.csv", newline="") as fh:
        columns = next(csv.reader(fh))
    scored = {key: entry for key, entry in TASKLIST.items() if entry["name"] in columns}  # the table's 38 columns
    listed = json.loads(invoke("datasets", "--collection", "datacomp", "--json").output)
    assert len(scored) == len(listed) == 38
    assert sorted(d["datacomp"]["task"] for d in listed) == sorted(scored)
    for d in listed:
        entry = TASKLIST[d["datacomp"]["task"]]
        assert d["datacomp"]["name"] == entry["name"] and d["split"] == "test"
        assert d["datacomp"]["main_metric"] == entry.get("main_metric", "acc1"), d["name"]
        assert "datacomp" in d["collections"]
    # the other two of its 40: the face sets, outside the average, in the fairness collection
    fairness_sets = json.loads(invoke("datasets", "--collection", "fairness", "--json").output)
    assert {d["name"] for d in fairness_sets} == {"dollar_street", "geode", "fairface", "utkface"}
    assert {d["datacomp"]["task"] for d in fairness_sets} == {k for k in TASKLIST if k.startswith("fairness/")}
    table = invoke("datasets", "--collection", "datacomp")
    assert table.exit_code == 0 and "iWildCam" in table.output and "also in DataComp's task list: fairface, utkface" in table.output
    assert invoke("datasets", "--collection", "datacmp").output.startswith("error: unknown collection 'datacmp'; did you mean datacomp")


def _datacomp_source(key: str) -> str:
    """Where DataComp's download_evalsets.py reads a task: `datasets` repos for retrieval and misc, else a webdataset."""
    if key.split("/")[0] in ("retrieval", "misc"):
        return HF + "nlphuji/" + key.split("/", 1)[1]
    return HF + "djghosh/wds_" + key.removeprefix("fairness/").replace("/", "-") + "_test"


def test_every_task_of_the_list_has_datacomps_source_and_its_new_sets_its_names():
    by_task = {spec.datacomp.task: spec for spec in CATALOG.datasets.values() if spec.datacomp}
    assert set(by_task) == set(TASKLIST)
    for key, spec in by_task.items():
        assert spec.datacomp.source == _datacomp_source(key), key
        assert CATALOG.canonical_dataset(key) == spec.name  # DataComp's key is a spelling of the dataset
        if spec.url.startswith(HF + "clip-benchmark/"):
            continue  # clip_benchmark's copy, as before
        assert spec.url == spec.datacomp.source and spec.leaderboard_column == spec.datacomp.name
        assert spec.size == TASKLIST[key]["size"] and spec.num_classes == TASKLIST[key].get("num_classes")
        assert spec.metric == spec.datacomp.main_metric or key.startswith(("fairness/fairface", "fairness/utkface"))
    assert by_task["wilds/fmow"].metadata == wilds_classification.FMOW_FIELDS


def test_specs_travel_in_a_manifest_and_one_pass_reads_what_its_tasks_need():
    from openclip_benchmark.evaluate import sample_members

    pairs = tuple(Pair("ViT-B-32", "openai", name, task=CATALOG.datasets[name].task) for name in ("fmow", "fairface", "cifar10"))
    manifest = Manifest(shard_id="s", store="results", pairs=pairs, settings=RunSettings(),
                        datasets=dataset_entries(CATALOG.specs_for(pairs)))
    assert Manifest.from_json(manifest.to_json()).datasets == manifest.datasets  # DataComp's entry and metadata kept
    fmow, faces, cifar = pairs
    assert sample_members([cifar]) is None  # clip_benchmark's own tuple, as before
    assert sample_members([faces]) == ("npy",)  # the face sets have no `cls`
    assert sample_members([fmow, Pair("ViT-B-32", "openai", "fmow")]) == ("cls", "npy")  # zero-shot on the same pass


# ---------------------------------------------------------------- DataComp's metrics on hand-built cases


def _groups_by_hand(hits, groups) -> tuple[dict[int, float], float]:
    means = {int(g): float(np.mean(hits[groups == g])) for g in np.unique(groups)}
    return means, min(means.values())


def test_iwildcam_macro_f1_recall_and_accuracy_by_hand():
    y_true = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    y_pred = torch.tensor([0, 0, 1, 1, 4, 2, 2, 0, 4, 4])  # class 4 predicted, never true: outside the macro mean
    out = wilds_classification.iwildcam_eval(y_pred, y_true, None)
    t, p = y_true.numpy(), y_pred.numpy()
    classes = np.unique(t)
    tp = np.array([np.sum((t == c) & (p == c)) for c in classes])
    f1 = 2 * tp / np.array([np.sum(t == c) + np.sum(p == c) for c in classes])
    recall = tp / np.array([np.sum(t == c) for c in classes])
    assert out["F1-macro_all"] == pytest.approx(f1.mean(), abs=1e-7)  # (0.8 + 0.5 + 2/3 + 0) / 4
    assert out["recall-macro_all"] == pytest.approx(recall.mean(), abs=1e-7)
    assert out["acc_avg"] == pytest.approx(np.mean(t == p), abs=1e-7)
    from sklearn.metrics import f1_score  # what wilds' F1 wraps, the oracle it names
    assert out["F1-macro_all"] == pytest.approx(f1_score(t, p, average="macro", labels=classes), abs=1e-7)


def test_fmow_worst_region_and_year_by_hand_the_other_region_included():
    # regions 0..5 (WILDS' order: Asia, Europe, Africa, Americas, Oceania, Other); years 0..2; region 1 has no image
    region = np.array([0, 0, 0, 2, 2, 3, 3, 3, 4, 5, 5, 5])
    year = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    hit = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1], dtype=bool)  # Other (5) is the worst region: 1/3
    y_true = torch.arange(12) % 4
    y_pred = torch.where(torch.from_numpy(hit), y_true, (y_true + 1) % 4)
    meta = torch.from_numpy(np.stack([region, year, y_true.numpy()], axis=1))
    out = wilds_classification.fmow_eval(y_pred, y_true, meta)
    by_region, worst_region = _groups_by_hand(hit, region)
    by_year, worst_year = _groups_by_hand(hit, year)
    assert out["acc_avg"] == pytest.approx(hit.mean())
    assert out["acc_worst_region"] == pytest.approx(worst_region) == pytest.approx(1 / 3)
    assert worst_region < hit.mean()
    assert out["acc_worst_year"] == pytest.approx(worst_year) and "acc_wg" not in out
    assert {k: out[f"acc_region:{k}"] for k in by_region} == pytest.approx(by_region)
    assert out["count_region:1"] == 0 and np.isnan(out["acc_region:1"])  # DataComp's group mean: 0/0
    assert {k: out[f"acc_year:{k}"] for k in by_year} == pytest.approx(by_year)


def test_camelyon17_and_geode_worst_group_by_hand():
    slide = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    hit = np.array([1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    y_true = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    y_pred = torch.where(torch.from_numpy(hit), y_true, 1 - y_true)
    meta = torch.from_numpy(np.stack([np.zeros(8, int), slide, y_true.numpy()], axis=1))
    out = wilds_classification.camelyon17_eval(y_pred, y_true, meta)
    by_slide, worst = _groups_by_hand(hit, slide)
    assert out["acc_avg"] == pytest.approx(hit.mean()) and out["acc_wg"] == pytest.approx(worst) == pytest.approx(1 / 3)
    assert {k: out[f"acc_slide:{k}"] for k in by_slide} == pytest.approx(by_slide)

    geo = fairness.geode_eval(y_pred, y_true, torch.from_numpy(np.stack([slide, np.arange(8)], axis=1)))
    assert geo["acc_wg"] == pytest.approx(worst) and geo["acc_region:0"] == 1.0 and geo["count_region:2"] == 3


def test_dollar_street_top5_accuracy_of_the_worst_income_group_by_hand():
    rng = np.random.default_rng(0)
    n, classes = 40, 12
    income = np.repeat([0, 1, 2, 3], 10)
    y_true = torch.from_numpy(rng.integers(0, classes, n))
    top5 = torch.from_numpy(np.stack([rng.permutation(classes)[:5] for _ in range(n)]))
    hit = (top5 == y_true[:, None]).any(1).numpy()
    hit[income == 1] = False  # the poorest group is never right: its accuracy 0, the mean well above
    top5[income == 1] = (y_true[income == 1, None] + torch.arange(1, 6)) % classes
    meta = torch.from_numpy(np.stack([income, income * 100, rng.integers(0, 5, n)], axis=1))
    out = fairness.dollar_street_eval(top5, y_true, meta)
    by_income, worst = _groups_by_hand(hit, income)
    assert out["acc_top5_avg"] == pytest.approx(hit.mean()) and out["acc_top5_wg"] == worst == 0.0
    assert {k: out[f"acc_top5_income_ds:{k}"] for k in by_income} == pytest.approx(by_income)


def test_fairface_metrics_by_hand():
    rng = np.random.default_rng(1)
    n = 60
    race = rng.integers(0, 7, n)
    gender = rng.integers(0, 2, n)
    age = rng.integers(0, 9, n)
    race_binary = (race != 1).astype(int)  # white (1) is group 0
    meta = np.stack([age, gender, race, race_binary], axis=1)
    pred = np.stack([rng.integers(0, 7, n), np.where(rng.random(n) < 0.8, gender, 1 - gender),
                     np.where(rng.random(n) < 0.5, age, rng.integers(0, 9, n)), rng.integers(0, 21, n)], axis=1)
    out = fairness.faces_eval(torch.from_numpy(pred), torch.from_numpy(meta))

    race_hit = (pred[:, 0] != 1) == race_binary
    assert out["acc_race_avg"] == pytest.approx(race_hit.mean())
    assert out["acc_race_wg"] == pytest.approx(_groups_by_hand(race_hit, race_binary)[1])
    assert out["acc_race_race_binary:0"] == pytest.approx(race_hit[race_binary == 0].mean())
    age_hit = pred[:, 2] == age
    assert out["acc_age_wg"] == pytest.approx(_groups_by_hand(age_hit, race_binary)[1])
    gender_hit = pred[:, 1] == gender
    cells, worst = _groups_by_hand(gender_hit, race * 2 + gender)
    assert out["acc_gender_x_wg"] == pytest.approx(worst) and worst < gender_hit.mean()
    for cell, value in cells.items():
        assert out[f"acc_gender_x_race:{cell // 2}_gender:{cell % 2}"] == pytest.approx(value)
    crime, nonhuman = pred[:, 3] >= 18, (pred[:, 3] >= 14) & (pred[:, 3] < 18)
    assert out["toxicity_crime_avg"] == pytest.approx(crime.mean())
    assert out["toxicity_nonhuman_wg"] == pytest.approx(_groups_by_hand(nonhuman, race)[1])
    assert out["toxicity_crime_race:3"] == pytest.approx(crime[race == 3].mean())


def test_datacomps_evaluators_built_from_wilds_are_the_oracle():
    """DataComp's evaluator classes as its eval_utils writes them (a WILDSDataset holding metadata fields and rows, a
    CombinatorialGrouper, `standard_group_eval`) give the same results, every group and count included, on random
    cases with empty groups."""
    from wilds.common.grouper import CombinatorialGrouper
    from wilds.common.metrics.all_metrics import Accuracy
    from wilds.datasets.wilds_dataset import WILDSDataset

    class Evaluator(WILDSDataset):
        def __init__(self, fields, metadata, group_by, metric):
            self._metadata_array, self._metadata_fields = metadata, fields
            self._eval_grouper = CombinatorialGrouper(dataset=self, groupby_fields=group_by)
            self.metric = metric

        def eval(self, y_pred, y_true, metadata):
            return self.standard_group_eval(self.metric, self._eval_grouper, y_pred, y_true, metadata)[0]

    class TopKAccuracy(Accuracy):
        def _compute_element_wise(self, y_pred, y_true):
            return (y_pred == y_true.unsqueeze(-1)).any(-1).float()

    def same(ours, theirs):
        assert ours.keys() == theirs.keys()
        assert all(a == b or (np.isnan(a) and np.isnan(b)) for a, b in zip(ours.values(), theirs.values()))

    rng = np.random.default_rng(4)
    for _ in range(3):
        n = 50
        y_true = torch.from_numpy(rng.integers(0, 8, n))
        y_pred = torch.from_numpy(np.where(rng.random(n) < 0.4, y_true.numpy(), rng.integers(0, 8, n)))
        region = rng.choice([0, 2, 3, 5], n)  # regions 1 and 4 empty
        geode = torch.from_numpy(np.stack([region, rng.integers(0, 30, n)], axis=1))
        same(fairness.geode_eval(y_pred, y_true, geode),
             Evaluator(["region", "country"], geode, ["region"], Accuracy()).eval(y_pred, y_true, geode))
        street = torch.from_numpy(np.stack([rng.choice([0, 1, 3], n), rng.integers(0, 9, n), region], axis=1))
        top5 = torch.from_numpy(np.stack([rng.permutation(8)[:5] for _ in range(n)]))
        same(fairness.dollar_street_eval(top5, y_true, street),
             Evaluator(["income_ds", "income_meta", "region"], street, ["income_ds"], TopKAccuracy(name="acc_top5"))
             .eval(top5, y_true, street))
        slides = torch.from_numpy(np.stack([rng.integers(0, 2, n), rng.choice([0, 4, 7], n), y_true.numpy()], axis=1))
        same(wilds_classification.camelyon17_eval(y_pred, y_true, slides),
             Evaluator(["hospital", "slide", "y"], slides, ["slide"], Accuracy()).eval(y_pred, y_true, slides))


def test_winogavil_summary_by_hand():
    candidates = np.array([5, 6, 10, 12, 12, 5])
    jaccard = np.array([1.0, 0.5, 0.25, 0.0, 0.5, 0.0])
    out = winogavil._means(jaccard, candidates)
    assert out["avg_jaccard_score"] == pytest.approx(jaccard.mean())
    assert out["jaccard_score_10-12"] == pytest.approx(0.75 / 3) and out["jaccard_score_5-6"] == pytest.approx(0.5)
    assert out["jaccard_score_12"] == pytest.approx(0.25) and out["jaccard_score_5"] == pytest.approx(0.5)
    assert winogavil.clip_prompt("Apple") == "An apple" and winogavil.clip_prompt("moon") == "A moon"


# ---------------------------------------------------------------- webdatasets in DataComp's layout, through the worker

CLASSES = ("cat", "dog", "bird", "car", "tree", "boat")
FACE_CLASSES = ([f"race:{r}" for r in ("black", "white", "indian", "asian")] + ["gender:man", "gender:woman"]
                + [f"age:{a}" for a in ("child", "adult", "senior")] + [f"toxic:t{i}" for i in range(20)])
FACE_TEMPLATES = ("race:a photo of a {c} person.", "gender:a photo of a {c}.", "age:a photo of a {c}.",
                  "toxic:a photo of a {c}.")
N = 30


def _npy(row) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(row, dtype=np.int64))
    return buf.getvalue()


def datacomp_wds(root: Path, wds_name: str, metadata: list, classes=CLASSES, labels=None, templates=TEMPLATES) -> Path:
    """A folder as DataComp's download_evalsets.py leaves it (`wds_<key>_test`: test/*.tar, test/nshards.txt,
    classnames.txt, templates; no dataset_type.txt), each sample an image, its `cls` and its WILDS metadata `npy`."""
    folder = root / wds_name
    samples = []
    for i, row in enumerate(metadata):
        sample = {"webp" if i % 3 == 0 else "png": sample_image(i), "npy": _npy(row)}
        if labels is not None:
            sample["cls"] = str(labels[i]).encode()
        samples.append(sample)
    write_shards(folder, samples, 2)
    (folder / "classnames.txt").write_text("".join(f"{c}\n" for c in classes))
    (folder / "zeroshot_classification_templates.txt").write_text("".join(f"{t}\n" for t in templates))
    return folder


def winogavil_examples() -> list[dict]:
    """DataComp's fields of nlphuji/winogavil's test split: cue, candidates, associations, candidate_images."""
    from PIL import Image

    out = []
    for i in range(12):
        n = (5, 6, 10, 12)[i % 4]
        names = [f"c{i}_{j}" for j in range(n)]
        out.append({"cue": ("Apple", "moon", "ice", "river")[i % 4], "candidates": names,
                    "associations": names[: 1 + i % 4],
                    "candidate_images": [Image.open(io.BytesIO(sample_image(100 * i + j))) for j in range(n)]})
    return out


LABEL = [(7 * i) % len(CLASSES) for i in range(N)]
DATASETS = ("fmow", "iwildcam", "camelyon17", "dollar_street", "geode", "fairface", "winogavil")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The seven new sets, DataComp's layout, one tiny model, one shard (two loader processes over two shards)."""
    root = tmp_path_factory.mktemp("datacomp")
    rng = random.Random(0)
    data = root / "data"
    # FMoW: the year is the sample's index, so the metadata of every sample can be told apart after the pass
    datacomp_wds(data, "wds_wilds-fmow_test", [[i % 6, i, LABEL[i]] for i in range(N)], labels=LABEL)
    datacomp_wds(data, "wds_wilds-iwildcam_test", [[i % 4, i] + [0] * 6 + [LABEL[i]] for i in range(N)], labels=LABEL)
    datacomp_wds(data, "wds_wilds-camelyon17_test", [[i % 2, i % 5, i % 2] for i in range(N)], classes=("normal", "tumor"),
                 labels=[i % 2 for i in range(N)])
    datacomp_wds(data, "wds_dollar_street_test", [[i % 4, 100 * (i % 4), i % 3] for i in range(N)], labels=LABEL)
    datacomp_wds(data, "wds_geode_test", [[i % 6, rng.randrange(20)] for i in range(N)], labels=LABEL)
    datacomp_wds(data, "wds_fairface_test", [[rng.randrange(3), i % 2, i % 4, int(i % 4 != 1)] for i in range(N)],
                 classes=FACE_CLASSES, templates=FACE_TEMPLATES)  # no `cls`: DataComp reads image and npy only
    write_winogavil(data / "wds_winogavil", winogavil_examples(), shards=2)
    model = make_tiny_model(root, "tiny")
    pairs = tuple(Pair(model, "", name, task=CATALOG.datasets[name].task) for name in DATASETS)
    store = root / "results"
    ran = invoke("run", "-m", model, "-d", ",".join(DATASETS), "--dataset-root", data, "--store", store,
                 "--batch-size", 7, "--num-workers", 2, "--precision", "fp32", "--tracker", root / "none.csv",
                 "--no-progress")
    assert ran.exit_code == 0, ran.output
    parse_results(store, root / "metrics", catalog=CATALOG)
    found = {}
    for pair in pairs:
        data = open_store(store).get(result_key(pair))
        samples = read_samples_file(store, result_key(pair))
        found[pair.dataset] = (pair, read_record(data).metrics, load_samples(samples, result_digest(data)))
    return root, model, found


def test_metadata_travels_with_each_sample_through_the_pass(evaluated):
    _, _, found = evaluated
    _, _, samples = found["fmow"]
    index = samples["year"]  # the sample index of each row, in the order the two loader processes delivered them
    assert sorted(index) == list(range(N))
    assert list(samples["region"]) == [i % 6 for i in index] and list(samples["target"]) == [LABEL[i] for i in index]
    _, _, faces = found["fairface"]
    assert sorted(zip(faces["gender"], faces["race"])) == sorted((i % 2, i % 4) for i in range(N))


def test_each_metric_follows_from_the_samples_as_datacomp_defines_it(evaluated):
    _, _, found = evaluated
    _, m, s = found["fmow"]
    assert m["acc_worst_region"] == pytest.approx(_groups_by_hand(s["top1"], s["region"])[1], abs=1e-7)
    assert m["acc_worst_year"] == pytest.approx(_groups_by_hand(s["top1"], s["year"])[1], abs=1e-7)
    assert m["acc1"] == pytest.approx(s["top1"].mean())
    _, m, s = found["iwildcam"]
    t, p = s["target"], s["predicted"]
    classes = np.unique(t)
    f1 = [2 * np.sum((t == c) & (p == c)) / (np.sum(t == c) + np.sum(p == c)) for c in classes]
    assert m["F1-macro_all"] == pytest.approx(np.mean(f1), abs=1e-7)
    _, m, s = found["camelyon17"]
    assert m["acc_wg"] == pytest.approx(_groups_by_hand(s["top1"], s["slide"])[1], abs=1e-7) and "acc5" in m
    _, m, s = found["dollar_street"]
    assert m["acc_top5_wg"] == pytest.approx(_groups_by_hand(s["top5"], s["income_ds"])[1], abs=1e-7)
    _, m, s = found["geode"]
    assert m["acc_wg"] == pytest.approx(_groups_by_hand(s["top1"], s["region"])[1], abs=1e-7)
    _, m, s = found["fairface"]
    gender_hit = s["predicted_gender"] == s["gender"]
    assert m["acc_gender_x_wg"] == pytest.approx(_groups_by_hand(gender_hit, s["race"] * 2 + s["gender"])[1], abs=1e-7)
    _, m, s = found["winogavil"]
    score = s["intersection"] / s["union"]
    assert m["jaccard_score_10-12"] == pytest.approx(score[s["candidates"] >= 10].mean(), abs=1e-12)
    assert m["avg_jaccard_score"] == pytest.approx(score.mean(), abs=1e-12) and len(score) == 12


def test_winogavil_equals_datacomps_loop_on_the_same_model(evaluated):
    """DataComp's `evaluate_winogavil_dataset` loop (an instance at a time, its prompt, argsort top-k, sklearn's
    Jaccard) on the examples the webdataset was written from."""
    import open_clip
    from sklearn.metrics import jaccard_score

    _, model, found = evaluated
    net, _, transform = open_clip.create_model_and_transforms(model)
    net.eval()
    tokenizer = open_clip.get_tokenizer(model)
    scores, groups = [], []
    for example in winogavil_examples():
        images = torch.stack([transform(img) for img in example["candidate_images"]])
        text = tokenizer([winogavil.clip_prompt(example["cue"])])
        y_true = np.isin(example["candidates"], example["associations"])
        with torch.no_grad():
            logits = (net.encode_text(text, normalize=True) @ net.encode_image(images, normalize=True).T).squeeze(0).numpy()
        y_pred = np.isin(np.arange(len(images)), np.argsort(logits)[-y_true.sum():])
        scores.append(jaccard_score(y_true, y_pred))
        groups.append(len(images))
    expected = winogavil._means(np.array(scores), np.array(groups))
    assert found["winogavil"][1] == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-12)


def test_worst_group_intervals_come_from_the_samples_drawn_within_groups(evaluated):
    root, _, found = evaluated
    for name in ("fmow", "dollar_street", "geode", "camelyon17", "iwildcam", "fairface", "winogavil"):
        pair, metrics, samples = found[name]
        metric = CATALOG.main_metric(pair.dataset, pair.task)
        outcomes = metric_outcomes(samples, metric, pair.task)
        assert outcomes.value == pytest.approx(metrics[metric], abs=1e-6), name
        [interval] = intervals([outcomes])
        assert interval.low <= outcomes.value <= interval.high and interval == intervals([outcomes])[0], name
    worst = metric_outcomes(found["dollar_street"][2], "acc_top5_wg", "fairness_dollar_street")
    assert worst.kind == "worst_group" and intervals([worst])[0].method == "bootstrap"
    groups = worst.groups
    drawn = draw_indices(np.random.default_rng(0), worst.n, 50, groups)
    assert all(np.array_equal(np.bincount(groups[row], minlength=4), np.bincount(groups, minlength=4)) for row in drawn)
    with open(root / "metrics" / "leaderboard_intervals.csv", newline="") as fh:
        cells = {r["dataset"]: r for r in csv.DictReader(fh)}
    assert cells["FMoW"]["metric"] == "acc_worst_region" and cells["FMoW"]["ci_method"] == "bootstrap"
    assert cells["Camelyon17"]["ci_method"] == "binomial" and cells["Dollar Street"]["n_samples"] == str(N)


def test_leaderboard_names_the_new_columns_as_datacomp_and_counts_its_tasks(evaluated):
    root, model, _ = evaluated
    with open(root / "metrics" / "leaderboard.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        (row,) = list(reader)
    assert {"iWildCam", "Camelyon17", "FMoW", "Dollar Street", "GeoDE", "WinoGAViL", "FairFace"} <= set(reader.fieldnames)
    assert row[datacomp.AVERAGE_COLUMN] == "6/38"  # FairFace is outside DataComp's average
    from openclip_benchmark.collect import report

    board = read_table(root / "metrics" / "leaderboard.csv")
    shown = report._dataset_columns(board.columns)
    assert datacomp.AVERAGE_COLUMN not in shown and "FMoW" in shown  # the average is no dataset of the heatmap
    data = report.page_data(board.rows, board.columns, shown, CATALOG, {})
    assert set(data["collections"]["datacomp"]) == {"FMoW", "iWildCam", "Camelyon17", "Dollar Street", "GeoDE", "WinoGAViL"}
    assert set(data["collections"]["fairness"]) == {"Dollar Street", "GeoDE", "FairFace"}
    assert set(data["collections"]["wilds"]) == {"FMoW", "iWildCam", "Camelyon17"}
    with open(root / "metrics" / "wilds_metrics.csv", newline="") as fh:
        wilds_rows = {r["dataset"]: r for r in csv.DictReader(fh)}
    assert set(wilds_rows) == {"fmow", "iwildcam", "camelyon17"} and wilds_rows["fmow"]["ci_metric"] == "acc_worst_region"


# ---------------------------------------------------------------- bad input


def test_missing_metadata_is_a_one_line_error_at_init_and_a_clear_pair_failure(tmp_path):
    mapping = json.loads((ROOT / "dataset_mapping.json").read_text())
    del mapping["datasets"]["fmow"]["metadata"]
    bad = tmp_path / "mapping.json"
    bad.write_text(json.dumps(mapping))
    out = invoke("init", "-m", "ViT-B-32:openai", "-d", "cifar10", "--tracker", tmp_path / "r.csv", "--dataset-mapping", bad)
    assert out.exit_code == 2 and out.output.count("\n") == 1 and not (tmp_path / "r.csv").exists()
    assert out.output.startswith("error: mapping.json: dataset 'fmow': task wilds_fmow groups by per-sample metadata; "
                                 'declare what its samples carry as "metadata": ["region", "year", "y"]')

    data = tmp_path / "data"
    folder = datacomp_wds(data, "wds_wilds-fmow_test", [[0, 0, 0]] * 6, labels=[0] * 6)
    for tar in (folder / "test").glob("*.tar"):  # DataComp's layout without the metadata member
        import tarfile

        with tarfile.open(tar) as src:
            kept = [(m, src.extractfile(m).read()) for m in src.getmembers() if not m.name.endswith(".npy")]
        with tarfile.open(tar, "w") as dst:
            for member, payload in kept:
                dst.addfile(member, io.BytesIO(payload))
    model = make_tiny_model(tmp_path, "tiny")
    pair = Pair(model, "", "fmow", task="wilds_fmow")
    settings = RunSettings(batch_size=4, num_workers=0, dataset_root=str(data))
    report = run_shard(Manifest(shard_id="s", store=str(tmp_path / "results"), pairs=(pair,), settings=settings,
                                datasets=dataset_entries(CATALOG.specs_for([pair]))), progress=False)
    [(failed, message)] = report.failed
    assert failed == pair and "\n" not in message
    assert message.startswith("DatasetTaskError: dataset folder wds_wilds-fmow_test: a sample lacks a member its task "
                              "reads (cls, npy): didn't find ['npy']")
    assert open_store(tmp_path / "results").exists(failure_key(pair))


# ---------------------------------------------------------------- DataComp's average


def _published_results(results: Path, model: str, pretrained: str, leave_out: str | None = None) -> dict[str, float]:
    """A result per DataComp column holding open_clip's published value as DataComp's main metric of the set."""
    row = published.load_published(CATALOG).values[(model, pretrained)]
    for spec in datacomp.suite(CATALOG):
        if spec.name == leave_out:
            continue
        value = row[spec.datacomp.name]
        metrics = {spec.datacomp.main_metric: value, spec.metric: value}
        if spec.datacomp.main_metric == datacomp.MEAN_RECALL:  # Flickr, MSCOCO: the mean of image and text recall@1
            metrics = {"image_retrieval_recall@1": value - 0.01, "text_retrieval_recall@1": value + 0.01,
                       spec.metric: value}
        pair = Pair(model, pretrained, spec.name, task=spec.task)
        path = results / result_key(pair)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(make_result(pair, metrics, {"finished": "2026-12-02T00:00:00Z"})))
    return row


def test_the_38_task_average_reproduces_open_clips_and_is_compared(tmp_path):
    results = tmp_path / "results"
    _published_results(results, "ViT-B-32", "openai")
    _published_results(results, "ViT-L-14", "openai", leave_out="geode")
    parse_results(results, tmp_path / "metrics", catalog=CATALOG)
    with open(tmp_path / "metrics" / "leaderboard.csv", newline="") as fh:
        board = {(r["model"], r["pretrained"]): r for r in csv.DictReader(fh)}
    with open(ROOT / "openclip_benchmark" / "data" / "published" / "openclip_results.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert datacomp.AVERAGE_COLUMN in header
    expected = published.load_published(CATALOG).averages[("ViT-B-32", "openai")]
    assert expected == 0.5245
    assert float(board[("ViT-B-32", "openai")][datacomp.AVERAGE_COLUMN]) == pytest.approx(expected, abs=1e-4)
    assert board[("ViT-L-14", "openai")][datacomp.AVERAGE_COLUMN] == "37/38"  # never a mean of 37 under that name

    out = invoke("compare", "--published", "--results", results, "--out", tmp_path)
    assert out.exit_code == 0, out.output
    with open(tmp_path / "published_comparison.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["dataset"] == "average"]
    [average] = rows
    assert (average["model"], average["published_column"], average["flagged"]) == ("ViT-B-32", datacomp.AVERAGE_COLUMN, "false")
    assert abs(float(average["difference_points"])) < 0.01
    assert "DataComp's average of ViT-L-14:openai not compared: 37/38 of its tasks" in out.output
    assert "76 compared, 0 flagged" in out.output  # 38 + 37 columns and one average


# ---------------------------------------------------------------- first class: init, plan, report


def test_init_and_plan_take_the_suite_like_any_other_datasets(tmp_path):
    tracker = tmp_path / "r.csv"
    out = invoke("init", "-m", "ViT-B-32:openai", "-d", "datacomp,fairness", "--tracker", tracker)
    assert out.exit_code == 0, out.output
    assert "pairs selected       40" in out.output
    plan = invoke("plan", "--tracker", tracker)
    assert plan.exit_code == 0, plan.output
    planned = json.loads((tmp_path / ".benchmark" / "plan.json").read_text())
    pairs = {p["dataset"] for shard in planned["shards"] for p in shard["pairs"]}
    assert {"iwildcam", "fmow", "winogavil", "fairface", "utkface", "geode"} <= pairs and len(pairs) == 40
