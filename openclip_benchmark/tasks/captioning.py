"""Captioning (CoCa): the model writes a caption for each image of a retrieval set, scored against its reference
captions with pycocoevalcap, as clip_benchmark 1.6.2's `metrics/captioning.py` does: open_clip's `generate` with its
defaults (beam search, no autocast), the text up to `<end_of_text>`, PTB tokenization, then BLEU-1..4, METEOR, ROUGE-L,
CIDEr and SPICE.

What runs where: BLEU, ROUGE-L and CIDEr are Python; the PTB tokenizer and METEOR run the jars pycocoevalcap ships
(Java); SPICE runs its jar with Stanford CoreNLP 3.6.0, which pycocoevalcap downloads at first use (where that cannot
happen, SPICE is NaN and the reason is printed: the other metrics do not depend on it). Generation itself needs
open_clip's CoCa `generate`, which imports `BeamSearchScorer` from transformers (gone in transformers 5): a pair is
refused where pairs are made when the installed transformers lacks it, or when the model has no text decoder.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import MODEL_REF_PREFIXES, Pair
from . import Task

SCORES = (("Bleu", ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4")), ("Meteor", ("METEOR",)), ("Rouge", ("ROUGE_L",)),
          ("Cider", ("CIDEr",)), ("Spice", ("SPICE",)))
METRICS = tuple(name for _, names in SCORES for name in names)
PER_IMAGE = ("CIDEr", "ROUGE_L", "SPICE")  # corpus score = mean of the per-image scores: their samples give intervals
GENERATION_PASSES = 6  # text-decoder passes one caption costs, about: 30 greedy steps over a growing prefix of 77


def _generates(model: str) -> bool | None:
    """Whether the model has a text decoder (CoCa); None where that is only known once it is loaded (hf-hub:)."""
    if model.startswith("local-dir:"):
        try:
            config = json.loads((Path(model[len("local-dir:"):]) / "open_clip_config.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return "multimodal_cfg" in (config.get("model_cfg") or {})
    if model.startswith(MODEL_REF_PREFIXES):
        return None
    return model.lower().startswith("coca")


def generation_unavailable() -> str | None:
    """Why open_clip's CoCa cannot generate with the installed packages, or None."""
    try:
        major = int(importlib.metadata.version("transformers").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return "open_clip's CoCa generate needs transformers, which is not installed"
    except ValueError:
        return None
    if major >= 5:
        return (f"open_clip's CoCa generate imports transformers' BeamSearchScorer, which transformers "
                f"{importlib.metadata.version('transformers')} no longer has (it needs transformers < 5, and "
                f"transformers 4 needs huggingface_hub < 1, which this project cannot use)")
    return None


def check_pair(pair: Pair) -> None:
    if _generates(pair.model) is False:
        raise BenchmarkError(f"captioning needs a model that generates text (CoCa); {pair.model} has no text decoder")
    reason = generation_unavailable()
    if reason:
        raise BenchmarkError(f"captioning {pair.model} on {pair.dataset}: {reason}")


def generate(loaded, images, labels) -> dict[str, list]:
    """One batch of the shared pass: the model's captions (as clip_benchmark decodes them) and the references."""
    from open_clip.tokenizer import _tokenizer

    out = loaded.model.generate(images)
    decoded = [_tokenizer.decode(tokens).split("<end_of_text>")[0].replace("<start_of_text>", "").strip()
               for tokens in out.cpu().numpy()]
    return {"generated": decoded, "references": [list(refs) for refs in labels]}


def _scorer(name: str):
    """A pycocoevalcap scorer; SPICE's only where its CoreNLP jars are (or can be) had."""
    import importlib

    module = importlib.import_module(f"pycocoevalcap.{name.lower()}.{name.lower()}")
    return getattr(module, name)(4) if name == "Bleu" else getattr(module, name)()


def coco_scores(generated: list[str], references: list[list[str]]) -> tuple[dict[str, float], dict[str, Any]]:
    """clip_benchmark's COCOEvalCap: corpus metrics, and per-image scores of the metrics that average them."""
    import numpy as np
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    if len(generated) != len(references) or not generated:
        raise BenchmarkError(f"captioning: {len(generated)} generated captions for {len(references)} images")
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": t} for t in refs] for i, refs in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": text}] for i, text in enumerate(generated)})
    metrics, per_image = {}, {}
    for scorer_name, names in SCORES:
        try:
            scorer = _scorer(scorer_name)
            score, scores = scorer.compute_score(gts, res)
        except Exception as exc:  # noqa: BLE001 - SPICE without its CoreNLP jars (no network at first use)
            if scorer_name != "Spice":
                raise
            print(f"SPICE not computed: {type(exc).__name__}: {exc}", file=sys.stderr)
            score, scores = float("nan"), None
        for name, value, values in zip(names, score if isinstance(score, list) else [score],
                                       scores if len(names) > 1 else [scores]):
            metrics[name] = float(value)
            if name in PER_IMAGE and values is not None:
                per_image[name] = np.array([v["All"]["f"] if isinstance(v, dict) else v for v in values], dtype=float)
    return metrics, per_image


def _gathered(pair: Pair, encoded) -> dict[str, list]:
    gathered = encoded.extras.get(TASK.name)
    if not gathered:
        raise BenchmarkError(f"the pass over {pair.dataset} generated no captions (captioning was not among its tasks)")
    return gathered


def _scored(pair: Pair, encoded) -> tuple[dict[str, float], dict[str, Any]]:
    """The scores of the pass's captions, computed once for the metrics and the outcomes (METEOR takes a while)."""
    gathered = _gathered(pair, encoded)
    if "scores" not in gathered:
        gathered["scores"] = [coco_scores(gathered["generated"], gathered["references"])]
    return gathered["scores"][0]


def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
    return dict(_scored(pair, encoded)[0])


def outcomes(pair: Pair, loaded, encoded, cache) -> dict[str, Any]:
    """Per image: the scores of the metrics whose corpus value is their mean (CIDEr, ROUGE-L, SPICE)."""
    return dict(_scored(pair, encoded)[1])



def statistics(samples, metric: str):
    """Each metric is the mean of its own per-sample array (see `outcomes`)."""
    from .statistics import per_sample

    return per_sample(samples, metric)


TASK = Task(name="captioning", dataset_type="retrieval", table="captioning_metrics", metrics=METRICS,
            main_metric="CIDEr", prompts=lambda spec, images: images * GENERATION_PASSES, evaluate=evaluate,
            outcomes=outcomes, statistics=statistics, captions=True, shares_data=True,
            batch=generate, features=False, check_pair=check_pair)  # generation in the shared pass, no features
