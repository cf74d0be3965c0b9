"""Tasks: what a pair's `task` means. One registry, one module per task (as clip_benchmark has one per task).

A task declares the dataset type it reads (`dataset_type.txt`), the files it needs beside the shards, how many
prompts its pairs send through the text tower (for the plan), the splits it learns from besides the scored one (a
linear probe's train split), its metrics and main metric, the parse table its rows go to, and how it scores a dataset
that `evaluate` encoded. Several tasks may read one dataset type (a classification set serves zero-shot, CuPL and
linear probe); the first registered for a type is what a folder of that type runs when the catalog does not say.
Every other module asks the registry; none compares task names. Tasks sit just above core: a Pair takes any
non-empty task name, and the places that build pairs from user input or data (catalog, CLI, record readers) check it
here. This module stays import-light (no torch): the task modules import torch and clip_benchmark inside the
functions that score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..core.errors import BenchmarkError, UnknownNameError
from ..core.pair import Pair


class DatasetTaskError(BenchmarkError):
    """The dataset folder holds another kind of data than the pair's task needs."""


def no_classifier(pair: Pair) -> None:
    """A task whose pairs share no zero-shot classifier."""
    return None


@dataclass(frozen=True)
class Task:
    name: str  # the result's `task` (clip_benchmark's names)
    dataset_type: str  # the `dataset_type.txt` value its data has (absent file: classification)
    metrics: tuple[str, ...]  # the metric columns of its table, in order
    main_metric: str  # the leaderboard's metric when the catalog names none
    table: str  # the parse table its rows go to
    evaluate: Callable[..., dict[str, float]]  # (pair, LoadedModel, EncodedDataset, ClassifierCache) -> metrics
    # (DatasetSpec or None, images) -> texts through the text tower (the default: none, a task without text)
    prompts: Callable[[Any, int], int] = lambda spec, images: 0
    # pairs with one key share one classifier per model; None: no classifier (the default)
    classifier: Callable[[Pair], str | None] = no_classifier
    # the same arguments -> name -> 1-D numpy array per image (or caption) from which its metrics follow (intervals,
    # paired tests; see collect/intervals.py); None: the task records none
    outcomes: Callable[..., dict[str, Any]] | None = None
    # (samples, metric) -> tasks.statistics.Outcomes or None: a metric as a function of the arrays `outcomes` made,
    # whose kind says how its interval is computed (binomial, bootstrap over samples or within groups); None: no
    # intervals. collect/ asks the task, never the metric's name
    statistics: Callable[..., Any] | None = None
    files: tuple[str, ...] = ()  # files its webdataset needs beside the shards
    # the webdataset members each sample carries beside its image, as the task reads them (None: clip_benchmark's own
    # reading of its dataset type); the encoding pass keeps each one per sample (`cls` becomes the targets)
    members: tuple[str, ...] | None = None
    # the per-sample metadata its metrics group by: the columns of each sample's `npy`, in order (DataComp's
    # `_metadata_fields`); a catalog entry of the task declares the same, so missing metadata is known before a run
    metadata: tuple[str, ...] = ()
    captions: bool = False  # its samples carry captions, encoded by the text tower in the same pass as the images
    aliases: tuple[str, ...] = ()  # names other tools write for it (clip_benchmark: see canonical_task)
    # a task that scores data another task reads (captioning: retrieval data; DataComp's folders carry no
    # dataset_type.txt: classification; a linear probe, CuPL prompts); a folder's type never names it
    shares_data: bool = False
    # (LoadedModel, folder, batch_size, num_workers, out, on_batch): a task whose samples have a layout of their own
    # (several images per sample) reads and encodes them itself into the empty EncodedDataset `out`; None: evaluate's
    # shared pass
    encode: Callable[..., Any] | None = None
    # (LoadedModel, images, labels) -> name -> list: more work per batch of the shared pass (captioning generates),
    # gathered into the encoding's `extras[task]`; such a task may need no features at all
    batch: Callable[..., dict[str, list]] | None = None
    features: bool = True  # its metrics need the pass's image (and caption) features
    # (DatasetSpec or None, images, language) -> texts, for a task whose prompts depend on the language
    language_prompts: Callable[[Any, int, str], int] | None = None
    # (Pair) -> None, raising BenchmarkError: a pair this task cannot score whatever the data (captioning without a
    # text decoder), refused where pairs are made (init, run, plan), never mid-shard
    check_pair: Callable[[Pair], None] | None = None
    # (DatasetSpec or None) -> the splits it learns from besides the scored one (a linear probe's train split)
    fit_splits: Callable[[Any], tuple[str, ...]] = lambda spec: ()
    # (DatasetSpec or None) -> optimiser steps of that learning, which the plan prices
    fit_steps: Callable[[Any], int] = lambda spec: 0
    cache_features: bool = False  # the image features of the splits it reads are kept in the store (`_features/`)
    languages: tuple[str, ...] | None = None  # the languages it has pairs in (None: the dataset's)
    label: str = ""  # leaderboard columns of a task that shares its dataset with another: `cifar10 (probe)`
    # the catalog's main metric of a dataset (its first task's) -> this task's, where that is not among its metrics
    main_metric_for: Callable[[str], str] | None = None

    def prompt_count(self, spec: Any, images: int, language: str = "en") -> int:
        """Texts one pair sends through the text tower (the plan prices them)."""
        if self.language_prompts is not None:
            return self.language_prompts(spec, images, language)
        return self.prompts(spec, images)

    def column(self, dataset: str) -> str:
        """Its leaderboard column for a dataset: the dataset's name, with the task's label where it has one."""
        return f"{dataset} ({self.label})" if self.label else dataset


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task; its name must be new, and so must its dataset type unless it `shares_data` (a folder's type names
    one task: the one that reads it when the catalog does not say)."""
    if task.name in _TASKS:
        raise BenchmarkError(f"task {task.name!r} is registered already")
    taken = next((t.name for t in _TASKS.values() if t.dataset_type == task.dataset_type and not t.shares_data), None)
    if taken and not task.shares_data:
        raise BenchmarkError(f"dataset type {task.dataset_type!r} is read by task {taken!r} already")
    _TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    _TASKS.pop(name, None)


def task_names() -> tuple[str, ...]:
    return tuple(_TASKS)


def tasks() -> tuple[Task, ...]:
    return tuple(_TASKS.values())


def get_task(name: str) -> Task:
    task = _TASKS.get(name)
    if task is None:
        raise UnknownNameError("task", name, _TASKS)
    return task


def task_for_dataset_type(kind: str) -> Task:
    """The task a folder of this `dataset_type.txt` value runs when the catalog does not name one."""
    for task in _TASKS.values():
        if task.dataset_type == kind and not task.shares_data:
            return task
    known = ", ".join(dict.fromkeys(t.dataset_type for t in _TASKS.values() if not t.shares_data))
    raise DatasetTaskError(f"unknown dataset_type.txt value {kind!r}; known: {known}")


def tasks_for_dataset_type(kind: str) -> tuple[Task, ...]:
    """Every task that can read data of this `dataset_type.txt` value, the folder's own first."""
    first = task_for_dataset_type(kind)
    return (first, *(t for t in _TASKS.values() if t.dataset_type == kind and t is not first))


def canonical_task(name: str, dataset_task: str | None = None) -> str:
    """The task a record means, so a pair has one identity whichever tool wrote it.

    clip_benchmark has no multilabel task: it writes voc2007_multilabel results as `zeroshot_classification`. When
    the catalog's task for the record's dataset lists the record's task among its aliases, the catalog's task wins.
    """
    if dataset_task and name != dataset_task and name in get_task(dataset_task).aliases:
        return dataset_task
    get_task(name)
    return name


def tables() -> tuple[str, ...]:
    """The parse tables, in registration order."""
    return tuple(dict.fromkeys(t.table for t in _TASKS.values()))


def table_metrics(table: str) -> list[str]:
    """The metric columns of a table: those of its tasks, in registration order."""
    return list(dict.fromkeys(m for t in _TASKS.values() if t.table == table for m in t.metrics))


def check_pairs(pairs: Iterable[Pair]) -> None:
    """Refuse, with one line, the first pair its task can never score (see `Task.check_pair`)."""
    for pair in pairs:
        check = get_task(pair.task).check_pair
        if check is not None:
            check(pair)


# The built-in tasks, last: each module takes `Task` from above. An import at module top, in plain sight of the
# layering test; the registration order is the parse tables' order.
from . import (  # noqa: E402
    babel_imagenet, captioning, fairness, image_caption_selection, linear_probe, multilabel, wilds_classification,
    winogavil, zeroshot_classification, zeroshot_retrieval,
)

for _builtin in (zeroshot_classification.TASK, zeroshot_retrieval.TASK, multilabel.TASK,
                 zeroshot_classification.CUPL, linear_probe.TASK, image_caption_selection.TASK, babel_imagenet.TASK,
                 captioning.TASK,  # clip_benchmark's other families
                 *wilds_classification.TASKS, *fairness.TASKS, winogavil.TASK):  # DataComp's own metrics
    register_task(_builtin)
