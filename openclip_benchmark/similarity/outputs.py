"""The files `similarity` writes from the scored models (rank 0 alone writes them), each atomically:

- `similarity_results.csv`: one row per (model, caption): url, caption, model, pretrained, image, similarity, rank
  of the true caption among all captions for that image, truncated (longer than the model's text context);
- `similarity_summary.csv`: one row per model: the statistics of `stats.summary`, the truncated count, the set's
  retrieval recalls (clip_benchmark's) and, with distractors, the share of images whose own captions all win;
- `similarity_distribution.png` and `similarity_heatmap.png` (a seeded sample of images x their first captions);
- `similarity_distractors.txt` (with --distractors K): per model and image a `# ...` line, then `score<TAB>text`
  for its own captions, then for its K distractors;
- `embeddings/<model>/` (with --export-embeddings): clip-retrieval's layout, `img_emb/img_emb_0.npy` and
  `text_emb/text_emb_0.npy` (float16, L2-normalised), `metadata/metadata_0.parquet` (a row per image, as
  img_emb's rows) and `metadata/text_metadata_0.parquet` (a row per caption, as text_emb's rows).
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np

from ..core.jsonio import atomic_write_bytes
from ..datasets.captions import truncated_captions
from ..storage.layout import slug
from ..tasks.zeroshot_retrieval import TASK as RETRIEVAL
from . import stats

RESULTS = "similarity_results.csv"
SUMMARY = "similarity_summary.csv"
DISTRIBUTION = "similarity_distribution.png"
HEATMAP = "similarity_heatmap.png"
DISTRACTORS = "similarity_distractors.txt"
EMBEDDINGS = "embeddings"
RESULT_COLUMNS = ("url", "caption", "model", "pretrained", "image", "similarity", "rank", "truncated")
SUMMARY_COLUMNS = ("model", "pretrained", "images", "captions", "mean", "std", "min", *stats.QUANTILE_COLUMNS, "max",
                   "threshold", "share_under_threshold", "truncated", *RETRIEVAL.metrics)
DISTRACTOR_COLUMN = "distractor_top_share"


def _number(value) -> str:
    return "" if value is None else f"{value:.6f}"


def _csv(rows: list[list], columns) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _label(model: str, pretrained: str) -> str:
    return f"{model}:{pretrained}" if pretrained else model


def embeddings_folder(out: Path, model: str, pretrained: str) -> Path:
    digest = hashlib.sha256(f"{model}\0{pretrained}".encode()).hexdigest()[:8]
    return out / EMBEDDINGS / f"{slug(model)}-{slug(pretrained or 'none')}-{digest}"


def write_outputs(scoring, index, scored) -> None:
    out = Path(scoring.out)
    out.mkdir(parents=True, exist_ok=True)
    captions = [c for s in index for c in s.captions]
    text_image = np.array([i for i, s in enumerate(index) for _ in s.captions])
    results, summaries, dumps, scores_by_model, heat = [], [], [], [], []
    sample = stats.sample_images(len(index), scoring.heatmap_size, scoring.seed)
    first = stats.caption_spans(text_image, len(index))[:, 0]
    for one in scored:
        scores, ranks = stats.pair_scores(one.image_emb, one.text_emb, text_image)
        cut = truncated_captions(captions, one.context_length)
        results += [[index[i].url, c, one.model, one.pretrained, int(i), _number(s), int(r), int(t)]
                    for c, i, s, r, t in zip(captions, text_image, scores, ranks, cut)]
        row = {"model": one.model, "pretrained": one.pretrained, "images": len(index), "captions": len(captions),
               **stats.summary(scores, scoring.threshold), "threshold": scoring.threshold, "truncated": sum(cut),
               **one.recalls}
        if scoring.distractors:
            row[DISTRACTOR_COLUMN] = _write_distractors(dumps, one, index, captions, text_image, scoring)
        summaries.append(row)
        scores_by_model.append((_label(one.model, one.pretrained), scores))
        heat.append((_label(one.model, one.pretrained), one.image_emb[sample] @ one.text_emb[first[sample]].T))
        if scoring.export_embeddings:
            _export(embeddings_folder(out, one.model, one.pretrained), one, index, captions, text_image)
    columns = SUMMARY_COLUMNS + ((DISTRACTOR_COLUMN,) if scoring.distractors else ())
    atomic_write_bytes(out / RESULTS, _csv(results, RESULT_COLUMNS))
    atomic_write_bytes(out / SUMMARY, _csv(
        [[v if isinstance(v := row.get(c), (str, int)) else _number(v) for c in columns] for row in summaries],
        columns))
    if scoring.distractors:
        atomic_write_bytes(out / DISTRACTORS, "".join(dumps).encode("utf-8"))
    _plot_distribution(out / DISTRIBUTION, scores_by_model, scoring.threshold)
    _plot_heatmap(out / HEATMAP, heat, len(sample))


def _write_distractors(dumps: list[str], one, index, captions, text_image, scoring) -> float:
    """The validation dump of one model; the share of images whose own captions all score above the distractors."""
    spans = stats.caption_spans(text_image, len(index))
    drawn = stats.draw_distractors(text_image, len(index), scoring.distractors, scoring.seed)
    wins = 0
    for i, ((start, stop), others) in enumerate(zip(spans, drawn)):
        own = one.text_emb[start:stop] @ one.image_emb[i]
        against = one.text_emb[others] @ one.image_emb[i]
        wins += stats.distractor_top(own, against)
        dumps.append(f"# model={_label(one.model, one.pretrained)} image={i} own={stop - start} "
                     f"distractors={len(others)} url={index[i].url}\n")
        dumps += [f"{_number(s)}\t{captions[j]}\n" for s, j in zip(own, range(start, stop))]
        dumps += [f"{_number(s)}\t{captions[j]}\n" for s, j in zip(against, others)]
    return wins / len(index)


def _npy(path: Path, array) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float16))
    atomic_write_bytes(path, buf.getvalue())


def _parquet(path: Path, columns: dict) -> None:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def _export(folder: Path, one, index, captions, text_image) -> None:
    """clip-retrieval's embedding folder: normalised float16 arrays and Parquet metadata row for row."""
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    _npy(folder / "img_emb" / "img_emb_0.npy", one.image_emb)
    _npy(folder / "text_emb" / "text_emb_0.npy", one.text_emb)
    _parquet(folder / "metadata" / "metadata_0.parquet",
             {"image": list(range(len(index))), "key": [s.key for s in index], "url": [s.url for s in index],
              "caption": [s.captions[0] for s in index], "captions": [len(s.captions) for s in index]})
    _parquet(folder / "metadata" / "text_metadata_0.parquet",
             {"image": text_image.tolist(), "caption": captions})


def _figure_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _plot_distribution(path: Path, scores_by_model, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, scores in scores_by_model:
        ax.hist(scores, bins=40, alpha=0.5, label=label)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("cosine similarity of image and its caption")
    ax.set_ylabel("captions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_bytes(path, _figure_bytes(fig))


def _plot_heatmap(path: Path, heat, images: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(heat), figsize=(4.5 * len(heat), 4), squeeze=False)
    for ax, (label, matrix) in zip(axes[0], heat):
        shown = ax.imshow(matrix, cmap="viridis", aspect="auto")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("caption (first of each sampled image)")
        ax.set_ylabel("sampled image")
        fig.colorbar(shown, ax=ax)
    fig.suptitle(f"cosine similarity, {images} sampled images x their captions", fontsize=9)
    fig.tight_layout()
    atomic_write_bytes(path, _figure_bytes(fig))
