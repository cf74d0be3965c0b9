"""WinoGAViL as DataComp scores it (its `eval_utils/wino_eval.py`): for each instance, a cue and 5 to 12 candidate
images of which some are associated with it; the model picks as many candidates as there are associations (those
whose image is most similar to the prompt of the cue), and the instance scores the Jaccard index of its picks and the
associations. DataComp reports the mean over all instances and over those with 5, 6, 10 and 12 candidates, and
leads with `jaccard_score_10-12`.

Data: a webdataset of one sample per candidate image (`dataset_type.txt` = `winogavil`): the image and a `json`
member `{"instance", "candidate" (its position among the instance's candidates), "cue", "association"}`, written
from DataComp's source (`nlphuji/winogavil`, fields `cue`, `candidates`, `associations`, `candidate_images`) by
`datasets.winogavil.winogavil_samples`. The images go through the shared encoding pass in batches; the cues through
the text tower once each.
"""

from __future__ import annotations

from typing import Any

from ..core.pair import Pair
from . import DatasetTaskError, Task

MEMBER = "json"
SIZES = (5, 6, 10, 12)  # DataComp's candidate counts
TEXT_BATCH = 256


def clip_prompt(cue: str) -> str:
    """DataComp's `get_clip_prompt`: the cue lower-cased after `A` or `An`."""
    item = cue.lower()
    return f"An {item}" if item[0] in "aeiou" else f"A {item}"


def instances(pair: Pair, encoded) -> list[tuple[str, list[int], list[bool]]]:
    """(cue, sample indices in candidate order, association per candidate) per instance, in instance order."""
    rows = encoded.members.get(MEMBER)
    if rows is None or len(rows) != encoded.num_samples:
        raise DatasetTaskError(f"dataset {pair.dataset}: WinoGAViL samples carry a `json` member per candidate image")
    found: dict[int, list] = {}
    try:
        for index, row in enumerate(rows):
            found.setdefault(int(row["instance"]), []).append((int(row["candidate"]), index, str(row["cue"]),
                                                                bool(row["association"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetTaskError(f"dataset {pair.dataset}: a WinoGAViL json member lacks instance, candidate, cue or "
                               f"association ({type(exc).__name__}: {exc})") from None
    out = []
    for key in sorted(found):
        members = sorted(found[key])
        if len({cue for _, _, cue, _ in members}) != 1 or not any(a for *_, a in members):
            raise DatasetTaskError(f"dataset {pair.dataset}: WinoGAViL instance {key} needs one cue and an association")
        out.append((members[0][2], [i for _, i, _, _ in members], [a for *_, a in members]))
    return out


def picks(pair: Pair, loaded, encoded) -> list[tuple[Any, Any]]:
    """(associations, picks) per instance, two boolean masks over its candidates: DataComp's pick is the top k of
    `np.argsort` of the cue's similarity to each candidate image, k the number of associations."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    found = instances(pair, encoded)
    images = torch.cat(encoded.image_features)
    prompts = [clip_prompt(cue) for cue, _, _ in found]
    out = []
    with torch.no_grad():
        texts = []
        for start in range(0, len(prompts), TEXT_BATCH):
            tokens = loaded.tokenizer(prompts[start:start + TEXT_BATCH]).to(loaded.device)
            with loaded.autocast():
                texts.append(F.normalize(loaded.model.encode_text(tokens), dim=-1))
        for text, (_, members, truth) in zip(torch.cat(texts), found):
            with loaded.autocast():
                similarity = (text[None] @ images[members].to(text.device).T).squeeze(0).cpu().numpy()
            truth = np.array(truth)
            out.append((truth, np.isin(np.arange(len(members)), np.argsort(similarity)[-int(truth.sum()):])))
    return out


def _means(jaccard, candidates) -> dict[str, float]:
    """DataComp's summary: the mean over every instance and over those of each candidate count."""
    return {
        "avg_jaccard_score": jaccard.mean(),
        **{f"jaccard_score_{n}": jaccard[candidates == n].mean() for n in SIZES},
        "jaccard_score_5-6": jaccard[candidates <= 6].mean(),
        "jaccard_score_10-12": jaccard[candidates >= 10].mean(),
    }


def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
    """sklearn's Jaccard score of each instance's associations and picks, averaged as DataComp averages them."""
    import warnings

    import numpy as np
    from sklearn.metrics import jaccard_score

    found = picks(pair, loaded, encoded)
    jaccard = np.array([jaccard_score(truth, picked) for truth, picked in found])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a candidate count without instances: the mean of none, NaN
        return {name: float(value) for name, value in _means(jaccard, np.array([len(t) for t, _ in found])).items()}


def outcomes(pair: Pair, loaded, encoded, cache) -> dict[str, Any]:
    """Per instance: its candidate count, and the picks that are associations and the union of picks and
    associations (their ratio is its Jaccard score)."""
    import numpy as np

    found = picks(pair, loaded, encoded)
    return {"candidates": np.array([len(t) for t, _ in found]),
            "intersection": np.array([int((t & p).sum()) for t, p in found]),
            "union": np.array([int((t | p).sum()) for t, p in found])}


def _selected(metric: str, candidates):
    """The instances a summary averages over, by its name; None for another metric."""
    if metric == "avg_jaccard_score":
        return candidates > 0
    size = metric.removeprefix("jaccard_score_")
    if size == "5-6":
        return candidates <= 6
    if size == "10-12":
        return candidates >= 10
    return candidates == int(size) if size.isdigit() and int(size) in SIZES else None


def statistics(samples, metric: str):
    """A mean of per-instance Jaccard scores, bootstrapped over the instances it averages."""
    from .statistics import Outcomes, has

    if not has(samples, "candidates", "intersection", "union"):
        return None
    chosen = _selected(metric, samples["candidates"])
    if chosen is None or not chosen.any():
        return None
    score = samples["intersection"][chosen] / samples["union"][chosen]
    return Outcomes(metric, "mean", score, samples["candidates"][chosen])


TASK = Task(
    name="winogavil",
    dataset_type="winogavil",
    metrics=("avg_jaccard_score", *(f"jaccard_score_{n}" for n in SIZES), "jaccard_score_5-6", "jaccard_score_10-12"),
    main_metric="jaccard_score_10-12",
    table="association_metrics",
    prompts=lambda spec, images: images,  # a cue per instance; the catalog's size counts instances
    evaluate=evaluate,
    outcomes=outcomes,
    statistics=statistics,
    members=(MEMBER,),
)
