"""DataComp's WILDS tasks (its `eval_utils/wilds_eval.py`): iWildCam, Camelyon17 and FMoW, zero-shot classification
scored by wilds' metrics over each sample's WILDS metadata row.

- iWildCam: accuracy, macro recall and macro F1 (`F1-macro_all`, DataComp's main metric) over the whole test set;
- Camelyon17: accuracy grouped by slide (DataComp's main metric is the plain top-1 accuracy, `acc1`);
- FMoW: accuracy grouped by year (its worst year, `acc_worst_year`) and by region (`acc_worst_region`, the main
  metric: the lowest accuracy over the regions holding a sample; DataComp means to leave out WILDS' "Other" region,
  but its evaluator has no metadata map, so no group is named "Other" and every region counts, here as there).
"""

from __future__ import annotations

from .datacomp import classification_task, grouped_statistics, metadata_table, standard_group_eval

TABLE = "wilds_metrics"
IWILDCAM_FIELDS = ("location", "sequence", "year", "month", "day", "hour", "minute", "second", "y")
CAMELYON17_FIELDS = ("hospital", "slide", "y")
FMOW_FIELDS = ("region", "year", "y")


def iwildcam_eval(y_pred, y_true, metadata) -> dict[str, float]:
    """DataComp's `IWildCamEvaluator.eval`: wilds' Accuracy, macro Recall and macro F1 (over the classes present)."""
    from wilds.common.metrics.all_metrics import F1, Accuracy, Recall

    out: dict[str, float] = {}
    for metric in (Accuracy(), Recall(average="macro"), F1(average="macro")):
        out.update(metric.compute(y_pred, y_true))
    return out


def camelyon17_eval(y_pred, y_true, metadata) -> dict[str, float]:
    """DataComp's `Camelyon17Evaluator.eval`: accuracy overall, per slide, and over the worst slide (`acc_wg`)."""
    from wilds.common.metrics.all_metrics import Accuracy

    return standard_group_eval(CAMELYON17_FIELDS, ["slide"], Accuracy(), y_pred, y_true, metadata)


def fmow_eval(y_pred, y_true, metadata) -> dict[str, float]:
    """DataComp's `FMoWEvaluator.eval`: accuracy overall and per year (its worst year as `acc_worst_year`), per
    region, and the worst region with a sample as `acc_worst_region`."""
    from wilds.common.grouper import CombinatorialGrouper
    from wilds.common.metrics.all_metrics import Accuracy

    table = metadata_table(FMOW_FIELDS, metadata)
    metric = Accuracy()
    out = table.standard_group_eval(metric, CombinatorialGrouper(dataset=table, groupby_fields=["year"]),
                                    y_pred, y_true, metadata)[0]
    out[f"{metric.name}_worst_year"] = out.pop(metric.worst_group_metric_field)
    regions = CombinatorialGrouper(dataset=table, groupby_fields=["region"])
    by_region = metric.compute_group_wise(y_pred, y_true, regions.metadata_to_group(metadata), regions.n_groups)
    held = []
    for group in range(regions.n_groups):
        name = regions.group_field_str(group)
        out[f"{metric.name}_{name}"] = by_region[metric.group_metric_field(group)]
        out[f"count_{name}"] = by_region[metric.group_count_field(group)]
        if by_region[metric.group_count_field(group)] == 0 or "Other" in name:
            continue
        held.append(by_region[metric.group_metric_field(group)])
    out[f"{metric.name}_worst_region"] = metric.worst(held)
    return out


def iwildcam_statistics(samples, metric: str):
    """Macro F1 bootstrapped over images; macro recall as mean per-class recall; acc_avg a share of images."""
    from .statistics import Outcomes, class_mean, has, share

    if not has(samples, "target", "predicted", "top1"):
        return None
    target, hits = samples["target"], samples["top1"]
    if metric == "F1-macro_all":
        return Outcomes(metric, "macro_f1", hits.astype(float), target, classes=target, predicted=samples["predicted"])
    if metric == "recall-macro_all":
        return class_mean(metric, hits, target)
    return share(metric, hits, target) if metric == "acc_avg" else None


IWILDCAM = classification_task(
    "wilds_iwildcam", IWILDCAM_FIELDS, ("acc_avg", "recall-macro_all", "F1-macro_all"), "F1-macro_all", TABLE,
    iwildcam_eval, keep=("location",), statistics=iwildcam_statistics)
CAMELYON17 = classification_task(
    "wilds_camelyon17", CAMELYON17_FIELDS, ("acc_avg", "acc_wg"), "acc1", TABLE, camelyon17_eval,
    keep=("hospital", "slide"), statistics=grouped_statistics("top1", "acc_avg", {"acc_wg": "slide"}))
FMOW = classification_task(
    "wilds_fmow", FMOW_FIELDS, ("acc_avg", "acc_worst_year", "acc_worst_region"), "acc_worst_region", TABLE,
    fmow_eval, keep=("region", "year"),
    statistics=grouped_statistics("top1", "acc_avg", {"acc_worst_region": "region", "acc_worst_year": "year"}))
TASKS = (IWILDCAM, CAMELYON17, FMOW)
