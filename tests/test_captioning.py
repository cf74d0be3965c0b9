"""Captioning: the shared pass's generation hook and pycocoevalcap's scores equal clip_benchmark's
`captioning.evaluate` on the same retrieval webdataset, metric by metric (BLEU-1..4, METEOR, ROUGE-L, CIDEr: Java 17
runs the tokenizer's and METEOR's jars).

Two things cannot exist here and are stood in for at their boundary, the same on both sides: open_clip's CoCa
`generate` (it imports transformers' BeamSearchScorer, gone in the transformers 5 this project needs: a generator
answers with fixed token rows instead), and SPICE's Stanford CoreNLP 3.6.0 jars (pycocoevalcap downloads them at first
use; without a network both sides report SPICE as NaN)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fixtures import make_retrieval_wds, make_tiny_model
from openclip_benchmark import evaluate
from openclip_benchmark.collect.intervals import metric_outcomes
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.synthetic import NOUNS, WORDS

BATCH_SIZE = 5


class CannedCoCa:
    """A stand-in for CoCa's `generate`: per image a caption picked from its pixels, as token rows (SOT ... EOT, zero
    padding) like open_clip returns. No image or text tower: the captioning pass must not ask for features."""

    def generate(self, images):
        import open_clip

        texts = []
        for image in images:
            level = float(image.mean())
            texts.append(f"a {WORDS[int(abs(level) * 97) % len(WORDS)]} {NOUNS[int(abs(level) * 31) % len(NOUNS)]}")
        return open_clip.tokenize(texts)[:, :20]


class NoSpice:
    """SPICE where its CoreNLP jars cannot be downloaded: NaN, as our task reports it."""

    def compute_score(self, gts, res):
        return float("nan"), [float("nan")] * len(gts)

    def method(self):
        return "SPICE"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioning")
    folder = make_retrieval_wds(root, "coco_like", n=12, captions_per_image=3)
    return folder, make_tiny_model(root, "tiny")


def test_captioning_equals_clip_benchmark(data, monkeypatch):
    import open_clip
    import torch
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import captioning

    folder, model_name = data
    _, _, transform = open_clip.create_model_and_transforms(model_name)
    loaded = evaluate.LoadedModel(("canned", ""), CannedCoCa(), transform, None, "cpu", "fp32")
    encoded = evaluate.encode_dataset(loaded, folder, BATCH_SIZE, 0, tasks=("captioning",))
    pair = Pair("canned", "", "coco_like", task="captioning")
    ours = evaluate.pair_metrics(pair, loaded, encoded, evaluate.ClassifierCache())
    outcomes = evaluate.pair_outcomes(pair, loaded, encoded, evaluate.ClassifierCache())

    monkeypatch.setattr(captioning, "Spice", NoSpice)
    ds = build_dataset("wds/coco_like", root=str(folder), transform=transform, split="test", task="captioning")
    loader = torch.utils.data.DataLoader(ds.batched(BATCH_SIZE), batch_size=None, shuffle=False, num_workers=0)
    theirs = captioning.evaluate(model=CannedCoCa(), dataloader=loader, batch_size=BATCH_SIZE, device="cpu",
                                 transform=transform, amp=False)

    assert set(ours) == set(theirs) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"}
    assert math.isnan(ours.pop("SPICE")) and math.isnan(theirs.pop("SPICE"))
    assert ours == {k: float(v) for k, v in theirs.items()}  # equal, not close
    assert 0 < ours["Bleu_1"] < 1 and ours["CIDEr"] > 0  # the captions overlap the references in part
    assert len(encoded.extras["captioning"]["generated"]) == 12 and not encoded.image_features
    # per-image CIDEr and ROUGE-L average to the corpus scores: their intervals come from the same samples
    assert set(outcomes) == {"CIDEr", "ROUGE_L"} and outcomes["CIDEr"].dtype == np.float64
    for metric in ("CIDEr", "ROUGE_L"):
        found = metric_outcomes(outcomes, metric)
        assert found.kind == "mean" and found.n == 12 and found.value == pytest.approx(ours[metric], rel=1e-12)
