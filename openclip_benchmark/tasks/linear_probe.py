"""Linear probe: a logistic-regression layer trained on the frozen image features of the train split, scored on the
test split, as clip_benchmark 1.6.2's `linear_probe` (metrics/linear_probe.py) does with its default settings.

The features are the encoding pass's (clip_benchmark's `Featurizer`: normalised `encode_image` under the same
autocast), so the test split's pass is shared with zero-shot pairs and the worker keeps both splits' features in the
store: the training, and the weight-decay sweep where there is a validation set, never encode again. From the features
on, every step is clip_benchmark's, in its order and with its random draws: the permutation of the train features
after `torch.manual_seed(seed)`, its `FeatureDataset` loaders (shuffled), AdamW with its cosine schedule, the sweep
over 97 weight decays (7 first, then halving spans around the peak), training on train + validation with the best one,
and its metrics. Its random draws are those of a clip_benchmark run that finds its features cached (`--skip_load`); a
first clip_benchmark run draws the permutation after its own model loading and loaders, so its numbers are not
reproducible from outside, ours are.

clip_benchmark picks validation data by `--val_split` (a split of the webdataset) or `--val_proportion` (held out of
the train set; its `random_split` cannot split a webdataset, which has no length). Here a dataset whose catalog entry
lists a `val` split is swept on it; one with a `val_proportion` holds that share of the train features out, drawn by
a generator seeded with the probe's seed; otherwise there is no sweep and the weight decay is 0, as in clip_benchmark
without either option. clip_benchmark's `train` runs on every visible GPU at once (DataParallel); here on the
worker's one device.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import BenchmarkError
from ..core.pair import Pair
from . import Task
from .zeroshot_classification import classification_metrics, classification_outcomes
from .zeroshot_classification import statistics as zeroshot_statistics

# clip_benchmark's defaults: --fewshot_k, --fewshot_epochs, --fewshot_lr, --batch_size, --seed, --normalize
FEWSHOT_K = -1  # every train sample
EPOCHS = 10
LR = 0.1
BATCH_SIZE = 64
SEED = 0
TRAIN_SPLIT, VAL_SPLIT = "train", "val"
SWEEP_TRAININGS = 7 + 3 * 4  # the first 7 weight decays, then 3 around the peak for spans 8, 4, 2, 1
FALLBACK_TRAIN = 50_000  # train samples of a dataset the catalog lacks (the plan's conservative guess)
METRICS = ("lp_acc1", "lp_acc5", "lp_mean_per_class_recall")
SETTINGS = ("weight_decay", "epochs", "seed", "fewshot_k")  # clip_benchmark writes these among the metrics


def fit_splits(spec: Any) -> tuple[str, ...]:
    """The train split, and the validation split where the catalog lists one."""
    return (TRAIN_SPLIT, VAL_SPLIT) if VAL_SPLIT in _splits(spec) else (TRAIN_SPLIT,)


def _splits(spec: Any) -> dict[str, int]:
    return dict(getattr(spec, "splits", None) or {})


def fit_steps(spec: Any) -> int:
    """Optimiser steps: one training without a validation set; with one, the sweep's trainings on the train part and
    the final one on train + validation."""
    splits = _splits(spec)
    train, val = splits.get(TRAIN_SPLIT, FALLBACK_TRAIN), splits.get(VAL_SPLIT, 0)
    proportion = getattr(spec, "val_proportion", None)
    if not val and proportion:
        val = int(train * proportion)
        train -= val
    if not val:
        return EPOCHS * _batches(train)
    return EPOCHS * (SWEEP_TRAININGS * _batches(train) + _batches(train + val))


def _batches(samples: int) -> int:
    return -(-samples // BATCH_SIZE)


def probe(pair: Pair, loaded, encoded):
    """(test logits and targets in the test split's order, the chosen weight decay), fitted once per pair and kept on
    the encoding, so its metrics and its per-sample outcomes come from one fit."""
    if pair not in encoded.fitted:
        encoded.fitted[pair] = _fit(pair, loaded, encoded)
    return encoded.fitted[pair]


def _fit(pair: Pair, loaded, encoded):
    import numpy as np
    import torch
    from clip_benchmark.metrics.linear_probe import FeatureDataset

    if TRAIN_SPLIT not in encoded.fit:
        raise BenchmarkError(f"a linear probe learns from the {TRAIN_SPLIT} split, which {pair.dataset} lacks")
    features, targets = encoded.fit[TRAIN_SPLIT].features()
    test_features, test_targets = encoded.features()
    val, proportion = encoded.fit.get(VAL_SPLIT), getattr(encoded.spec, "val_proportion", None)
    if val is not None:
        val_features, val_targets = val.features()
    elif proportion:
        features, targets, val_features, val_targets = _hold_out(features, targets, proportion)
    run = _Run(loaded)

    with torch.random.fork_rng(devices=[]):  # clip_benchmark seeds the process's generator; ours is left as it was
        torch.manual_seed(SEED)
        idxs = [p.item() for p in torch.randperm(len(features))]  # fewshot_k = -1: every sample, in this order
        train_features, train_labels = features[idxs], targets[idxs]
        train_loader = run.loader(FeatureDataset(train_features, train_labels))
        test_loader = run.loader(_Indexed(test_features, test_targets))
        input_shape, output_shape = features[0].shape[0], targets.max().item() + 1
        if val is None and not proportion:
            best_wd, final_loader = 0, train_loader
        else:
            val_loader = run.loader(FeatureDataset(val_features, val_targets))
            final_loader = run.loader(FeatureDataset(np.concatenate((train_features, val_features)),
                                                     np.concatenate((train_labels, val_targets))))
            best_wd = run.sweep(train_loader, val_loader, input_shape, output_shape)
        model = run.train(final_loader, input_shape, output_shape, best_wd)
        logits, target, order = run.infer(model, test_loader)
    back = torch.empty_like(order)
    back[order] = torch.arange(len(order))
    return logits[back], target[back], best_wd


def _hold_out(features, targets, proportion: float):
    """clip_benchmark's `random_split(train, [1 - p, p])` of the train features, with the probe's seed."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    train, val = torch.utils.data.random_split(range(len(features)), [1 - proportion, proportion], generator=generator)
    return features[train.indices], targets[train.indices], features[val.indices], targets[val.indices]


class _Indexed:
    """clip_benchmark's FeatureDataset that also yields each row's index, so the shuffled test predictions can be put
    back in the split's order (the rows and their batches are the same)."""

    def __init__(self, features, targets):
        self.features, self.targets = features, targets

    def __len__(self):
        return len(self.features)

    def __getitem__(self, i):
        return self.features[i], self.targets[i], i


class _Run:
    """clip_benchmark's `train`, `infer` and `find_peak` on the loaded model's device and autocast."""

    def __init__(self, loaded):
        self.loaded, self.device = loaded, loaded.device

    def loader(self, dataset):
        import torch

        return torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=0)

    def train(self, loader, input_shape: int, output_shape: int, weight_decay: float):
        import torch
        from clip_benchmark.metrics.linear_probe import cosine_lr

        torch.manual_seed(SEED)
        model = torch.nn.Linear(input_shape, output_shape).to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=weight_decay)
        criterion = torch.nn.CrossEntropyLoss()
        scheduler = cosine_lr(optimizer, LR, 0., EPOCHS * len(loader))
        for epoch in range(EPOCHS):
            for i, (x, y) in enumerate(loader):
                x, y = x.to(self.device), y.to(self.device)
                scheduler(i + epoch * len(loader))
                optimizer.zero_grad()
                with self.loaded.autocast():
                    loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
        return model

    def infer(self, model, loader):
        """(logits, targets, row indices) in the loader's order."""
        import torch

        pred, true, rows = [], [], []
        with torch.no_grad():
            for x, y, *index in loader:
                with self.loaded.autocast():
                    logits = model(x.to(self.device))
                pred.append(logits.cpu())
                true.append(y)
                rows += index
        return torch.cat(pred), torch.cat(true), torch.cat(rows) if rows else None

    def sweep(self, train_loader, val_loader, input_shape: int, output_shape: int) -> float:
        """The OpenAI-style search of clip_benchmark: the best of 7 weight decays of 97, then around it."""
        import numpy as np

        wd_list = np.logspace(-6, 2, num=97).tolist()
        wd_list_init = np.logspace(-6, 2, num=7).tolist()
        peak = self._peak(wd_list, [i for i, val in enumerate(wd_list) if val in wd_list_init], train_loader,
                          val_loader, input_shape, output_shape)
        step_span = 8
        while step_span > 0:
            left, right = max(peak - step_span, 0), min(peak + step_span, len(wd_list) - 1)
            peak = self._peak(wd_list, [left, peak, right], train_loader, val_loader, input_shape, output_shape)
            step_span //= 2
        return wd_list[peak]

    def _peak(self, wd_list, idxs, train_loader, val_loader, input_shape, output_shape) -> int:
        from clip_benchmark.metrics.zeroshot_classification import accuracy

        best_wd_idx, max_acc = 0, 0
        for idx in idxs:
            model = self.train(train_loader, input_shape, output_shape, wd_list[idx])
            logits, target, _ = self.infer(model, val_loader)
            acc1, = accuracy(logits.float(), target.float(), topk=(1,))
            if max_acc < acc1:
                best_wd_idx, max_acc = idx, acc1
        return best_wd_idx


def evaluate(pair: Pair, loaded, encoded, cache) -> dict[str, float]:
    """clip_benchmark's metrics and settings of the probe (its `normalized` flag, a boolean, is no metric here)."""
    logits, target, weight_decay = probe(pair, loaded, encoded)
    metrics = classification_metrics(logits.float(), target, top5=bool(target.max() >= 5))
    return {**{f"lp_{name}": value for name, value in metrics.items()},
            "weight_decay": weight_decay, "epochs": EPOCHS, "seed": SEED, "fewshot_k": FEWSHOT_K}


def outcomes(pair: Pair, loaded, encoded, cache) -> dict[str, Any]:
    """Per test image, in the split's order: its class, the probe's prediction and its top-1 (and top-5) hits."""
    logits, target, _ = probe(pair, loaded, encoded)
    return classification_outcomes(logits.float(), target, top5=bool(target.max() >= 5))


def statistics(samples, metric: str):
    """Its metrics follow from its predictions as zero-shot's do from the classifier's (`lp_acc1` as `acc1`)."""
    return zeroshot_statistics(samples, metric.removeprefix("lp_"))


TASK = Task(name="linear_probe", dataset_type="classification", table="linear_probe_metrics",
            metrics=METRICS + SETTINGS, main_metric="lp_acc1", main_metric_for=lambda metric: f"lp_{metric}",
            evaluate=evaluate, outcomes=outcomes, statistics=statistics, shares_data=True, fit_splits=fit_splits,
            fit_steps=fit_steps, cache_features=True, label="probe",
            languages=("en",))  # no text: one pair per model and dataset
