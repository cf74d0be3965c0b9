"""Bad input for the new task families is one `error:` line and exit 2 at init, run or plan, never mid-shard: a
language a dataset lacks, a captioning pair for a model that cannot generate text, a dataset with no published
webdataset; and what the catalog, the plan and the tracker hold for the families."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fixtures import make_retrieval_wds, make_tiny_model
from openclip_benchmark.catalog import check_pairs, load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.datasets.download import ensure_dataset
from openclip_benchmark.tasks import captioning
from openclip_benchmark.tracker import Tracker


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_error_line(result, text):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.output


def test_a_language_a_dataset_lacks_is_refused_at_init_and_run(tmp_path):
    tracker = tmp_path / "results.csv"
    _one_error_line(invoke("init", "-t", tracker, "-d", "xtd10", "-l", "ar"), "dataset xtd10 has no language 'ar'")
    _one_error_line(invoke("init", "-t", tracker, "-d", "xtd10,winoground", "-l", "sw"),
                    "none of the 2 chosen datasets has language 'sw'")
    _one_error_line(invoke("init", "-t", tracker, "-d", "xtd10", "-l", "klingon"), "unknown language 'klingon'")
    assert not tracker.exists()  # nothing written
    _one_error_line(invoke("run", "-m", "ViT-B-32:openai", "-d", "babel_imagenet", "--languages", "jp"),
                    "dataset babel_imagenet has no language 'jp'")


def test_init_adds_each_language_of_a_multilingual_set(tmp_path):
    tracker = tmp_path / "results.csv"
    result = invoke("init", "-t", tracker, "-m", "ViT-B-32:openai", "-d", "multilingual", "-l", "de,ja,sw,deu_Latn")
    assert result.exit_code == 0, result.output
    pairs = {(e.pair.dataset, e.pair.language, e.pair.task) for e in Tracker.load(tracker)}
    assert ("xtd10", "de", "zeroshot_retrieval") in pairs and ("crossmodal3600", "sw", "zeroshot_retrieval") in pairs
    assert ("xtd200", "deu_Latn", "zeroshot_retrieval") in pairs and ("babel_imagenet", "ja", "babel_zeroshot_classification") in pairs
    assert ("imagenet1k", "de", "zeroshot_classification") not in pairs  # each dataset gets only the languages it has


def test_a_tracker_pair_in_a_language_its_dataset_lacks_stops_the_plan(tmp_path):
    tracker = tmp_path / "results.csv"
    assert invoke("init", "-t", tracker, "-m", "ViT-B-32:openai", "-d", "xtd10").exit_code == 0
    text = tracker.read_text().replace(",xtd10,en,", ",xtd10,ar,")
    tracker.write_text(text)
    before = tracker.read_bytes()
    _one_error_line(invoke("plan", "--tracker", tracker), "dataset xtd10 has no language 'ar'")
    assert tracker.read_bytes() == before


def test_captioning_needs_a_model_with_a_text_decoder(tmp_path):
    clip = make_tiny_model(tmp_path, "tiny_clip")
    with pytest.raises(BenchmarkError, match="has no text decoder"):
        check_pairs([Pair(clip, "", "mscoco_captions", task="captioning")], load_catalog().datasets)
    with pytest.raises(BenchmarkError, match="ViT-B-32 has no text decoder"):
        captioning.check_pair(Pair("ViT-B-32", "openai", "mscoco_captions", task="captioning"))
    make_retrieval_wds(tmp_path / "data", "coco_like", n=4)
    _one_error_line(invoke("run", "-m", clip, "-d", "coco_like", "--dataset-root", tmp_path / "data", "--task",
                           "captioning", "--store", tmp_path / "results"), "has no text decoder")
    assert not (tmp_path / "results").exists()


def test_captioning_says_why_coca_cannot_generate_here():
    """open_clip 3.3.0's CoCa.generate imports transformers' BeamSearchScorer, gone in transformers 5."""
    import importlib.metadata

    reason = captioning.generation_unavailable()
    if int(importlib.metadata.version("transformers").split(".")[0]) >= 5:
        assert "BeamSearchScorer" in reason
        with pytest.raises(BenchmarkError, match="BeamSearchScorer"):
            captioning.check_pair(Pair("coca_ViT-B-32", "laion2b_s13b_b90k", "mscoco_captions", task="captioning"))
    else:
        assert reason is None


def test_a_dataset_with_no_published_webdataset_says_how_to_convert_it(tmp_path):
    spec = load_catalog().dataset("sugar_crepe/add_att")  # clip_benchmark's spelling
    with pytest.raises(BenchmarkError, match="benchmark dataset convert sugar_crepe --from DIR"):
        ensure_dataset(spec.name, tmp_path, spec=spec)
    _one_error_line(invoke("dataset", "convert", "sugar_crep", "--from", tmp_path), "did you mean sugar_crepe")
    _one_error_line(invoke("dataset", "convert", "winoground", "--from", tmp_path), "no data/test-*.parquet")


def test_catalog_entries_of_the_families():
    cat = load_catalog()
    collections = cat.collections()
    assert len(collections["compositionality"]) == 8 and len(collections["sugar_crepe"]) == 7
    assert set(collections["multilingual_retrieval"]) == {"xtd10", "xtd200", "flickr30k-200",
                                                          "multilingual_mscoco_captions", "crossmodal3600"}
    assert {"babel_imagenet", "imagenet1k"} <= set(collections["multilingual"])
    assert len(cat.dataset("crossmodal3600").languages) == 36 and len(cat.dataset("xtd200").languages) == 201
    assert len(cat.dataset("babel_imagenet").languages) == 90
    # clip_benchmark's result names read back as these entries
    assert cat.canonical_dataset("sugar_crepe/swap_obj") == "sugar_crepe-swap_obj"
    assert cat.canonical_dataset("flickr30k-200") == "flickr30k-200"
    listed = json.loads(invoke("datasets", "compositionality", "--json").output)
    assert [d["size"] for d in listed] == [692, 2062, 788, 1652, 1406, 666, 246, 400]
    assert {d["convert"] for d in listed} == {"sugar_crepe", "winoground"}


def test_parse_writes_selection_rows_and_open_clips_multilingual_table(tmp_path):
    import csv

    from openclip_benchmark.collect.parse import parse_results
    from openclip_benchmark.core.jsonio import atomic_write_json
    from openclip_benchmark.core.records import make_result
    from openclip_benchmark.storage.layout import result_key

    results = tmp_path / "results"
    values = {}
    for model in ("nllb-clip-base", "ViT-B-32"):
        for dataset, langs in (("crossmodal3600", ("de", "en", "sw")), ("multilingual_mscoco_captions", ("en", "jp"))):
            for i, lang in enumerate(langs):
                pair = Pair(model, "v1", dataset, language=lang, task="zeroshot_retrieval")
                metrics = {f"{side}_retrieval_recall@{k}": round(0.1 * k / 10 + 0.01 * i + (side == "text") * 0.05, 4)
                           for side in ("image", "text") for k in (1, 5, 10)}
                values[(model, dataset, lang)] = metrics
                atomic_write_json(results / result_key(pair), make_result(pair, metrics, {"finished": "x"}))
        pair = Pair(model, "v1", "winoground", task="image_caption_selection")
        atomic_write_json(results / result_key(pair), make_result(pair, {"text_acc": 0.3, "image_acc": 0.1, "acc": 0.05},
                                                                 {"finished": "x"}))
    report = parse_results(results, tmp_path / "out", catalog=load_catalog())
    assert report.rows["selection_metrics"] == 2 and report.rows["multilingual_retrieval"] == 2
    with open(tmp_path / "out" / "selection_metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames[reader.fieldnames.index("task") + 2:][:3] == ["text_acc", "image_acc", "acc"]
    assert {r["dataset"] for r in rows} == {"winoground"} and rows[0]["acc"] == "0.05"
    with open(tmp_path / "out" / "multilingual_retrieval.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        table = {r["model"]: r for r in reader}
    columns = reader.fieldnames
    assert columns[:4] == ["model", "pretrained", "preprocess", "avg"]
    assert columns[4:8] == ["crossmodal3600 image_retrieval_recall@1 avg", "crossmodal3600 image_retrieval_recall@1 de",
                            "crossmodal3600 image_retrieval_recall@1 en", "crossmodal3600 image_retrieval_recall@1 sw"]
    assert "multilingual_mscoco_captions text_retrieval_recall@5 jp" in columns  # open_clip's names
    row = table["ViT-B-32"]
    langs = ("de", "en", "sw")
    assert float(row["crossmodal3600 text_retrieval_recall@10 avg"]) == pytest.approx(
        sum(values[("ViT-B-32", "crossmodal3600", lang)]["text_retrieval_recall@10"] for lang in langs) / 3)
    cells = [v for (m, _, _), metrics in values.items() if m == "ViT-B-32" for v in metrics.values()]
    assert float(row["avg"]) == pytest.approx(sum(cells) / len(cells))  # open_clip's avg: every cell of the row


def test_the_plan_reads_a_multilingual_set_once_and_prices_each_languages_captions():
    from openclip_benchmark.planning import cost, plan, pricing

    cat = load_catalog()
    langs = cat.dataset("crossmodal3600").languages

    def planned(languages):
        pairs = [Pair("ViT-B-32", "openai", "crossmodal3600", language=lang, task="zeroshot_retrieval")
                 for lang in languages]
        return plan.plan_shards(pairs, models=plan.ModelIndex(cat.models), datasets=cat.datasets,
                                gpus=pricing.load_gpus(), prices=pricing.load_prices())

    one, every = planned(langs[:1]), planned(langs)
    assert len(one.shards) == len(every.shards) == 1 and one.shards[0].gpu == every.shards[0].gpu
    model = cost.ModelIndex(cat.models).work("ViT-B-32", "openai")
    work = cost.pair_work(Pair("ViT-B-32", "openai", "crossmodal3600", language="sw", task="zeroshot_retrieval"), model,
                          cat.datasets)
    assert work.prompts == 3600  # one caption per image in each language, through the text tower
    text = cost.text_seconds(work.prompts, model, pricing.load_gpus()[one.shards[0].gpu], cost.CostModel())
    assert every.runtime_s - one.runtime_s == pytest.approx((len(langs) - 1) * text, rel=1e-9)  # no image pass again


def test_dataset_convert_command_writes_a_webdataset_the_worker_reads(tmp_path):
    from family_fixtures import make_crossmodal3600

    from openclip_benchmark.datasets.download import check_layout

    source = make_crossmodal3600(tmp_path / "xm3600", ("en", "de"), n=3, missing=0)
    result = invoke("dataset", "convert", "crossmodal3600", "--from", source, "--root", tmp_path / "datasets",
                    "--shard-size", 2)
    assert result.exit_code == 0, result.output
    assert "3 samples" in result.output and "2 languages" in result.output
    folder = tmp_path / "datasets" / "wds_crossmodal3600"
    spec = load_catalog().dataset("crossmodal3600")
    assert check_layout(folder, spec.split, spec.task, spec.name) == folder
    assert ensure_dataset("crossmodal3600", tmp_path, tmp_path / "datasets", spec=spec) == folder
    assert (folder / "test" / "nshards.txt").read_text() == "2\n"
    again = invoke("dataset", "convert", "crossmodal3600", "--from", source, "--root", tmp_path / "datasets")
    assert again.exit_code == 0 and (folder / "test" / "nshards.txt").read_text() == "1\n"  # replaced whole
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["wds_crossmodal3600"]  # no temp folder left
