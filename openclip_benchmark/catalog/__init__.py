"""Models and datasets: what can be benchmarked, read from data files so the CLI never imports open_clip to know it.

Datasets come from `dataset_mapping.json` (repo root, or the copy packaged in the wheel). Models come from
`data/models.json`, a snapshot generated from the installed open_clip by `catalog.snapshot.build_model_catalog()`
(`benchmark models --refresh`): parameters and GFLOPs are counted on the meta device, so no weights are needed.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..core.errors import BenchmarkError, InvalidResultError, UnknownNameError
from ..core.jsonio import read_json
from ..core.paths import unsafe_dataset_entry
from ..core.pair import MODEL_REF_PREFIXES, Pair, parse_model_ref
from ..tasks import canonical_task, get_task, task_names
from ..tasks import check_pairs as check_task_pairs

PACKAGE_DIR = Path(__file__).resolve().parents[1]
MAPPING_NAME = "dataset_mapping.json"
MODELS_PATH = PACKAGE_DIR / "data" / "models.json"
HF_DATASETS_URL = "https://huggingface.co/datasets/clip-benchmark/"
DEFAULT_LANGUAGES = ("en",)
GLOB_CHARS = "*?["


class CatalogError(BenchmarkError):
    pass


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DataCompTask:
    """A dataset as DataComp's `tasklist.yml` names it: its task key, display name (the column of open_clip's
    published table), main metric, and the data its `download_evalsets.py` fetches."""

    task: str  # `wilds/iwildcam`
    name: str  # `iWildCam`
    main_metric: str  # DataComp's (acc1 where its task list names none)
    source: str  # the Hugging Face repo DataComp reads it from


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark dataset as clip_benchmark's webdataset suite ships it."""

    name: str
    wds_name: str
    url: str
    task: str  # its first task: the one a pair gets unless `--tasks` names others
    split: str  # the split its tasks score
    size: int  # samples in that split
    num_classes: int | None
    captions_per_image: int | None
    metric: str  # the main metric of its first task (another task maps it: Task.main_metric_for)
    collections: tuple[str, ...]
    languages: tuple[str, ...]
    templates: int | None = None  # zero-shot prompt templates per class (clip_benchmark's English set), for the plan
    metadata: tuple[str, ...] = ()  # the metadata each sample carries (its `npy` columns), as its task reads them
    datacomp: DataCompTask | None = None  # the dataset in DataComp's suite; None: not one of its tasks
    column: str | None = None  # its leaderboard column where it is not the key (DataComp's name for its own sets)
    # no published webdataset: `benchmark dataset convert <convert>` writes one from the files `url` points to
    convert: str | None = None
    tasks: tuple[str, ...] = ()  # every task it serves, `task` first (a classification set: zero-shot, linear probe)
    splits: Mapping[str, int] = field(default_factory=dict, hash=False)  # samples per split it has, `split` included
    # the share of the train split a linear probe holds out to choose its weight decay (clip_benchmark's
    # --val_proportion), where the dataset has no `val` split; None: no such sweep
    val_proportion: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(dict.fromkeys((self.task, *self.tasks))))
        object.__setattr__(self, "splits", {**self.splits, self.split: self.size})  # `size` is the scored split's

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["collections"] = list(self.collections)
        out["languages"] = list(self.languages)
        out["metadata"] = list(self.metadata)
        out["tasks"] = list(self.tasks)
        return out

    @property
    def leaderboard_column(self) -> str:
        return self.column or self.name


def mapping_path() -> Path:
    """The repo's top-level mapping when running from a checkout, else the copy packaged in the wheel."""
    for candidate in (PACKAGE_DIR.parent / MAPPING_NAME, PACKAGE_DIR / MAPPING_NAME):
        if candidate.is_file():
            return candidate
    raise CatalogError(f"{MAPPING_NAME} not found next to the package; reinstall openclip-benchmark")


def _dataset_from_json(name: str, raw: Any, where: str) -> DatasetSpec:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: dataset {name!r} must be an object")
    known = {f.name for f in fields(DatasetSpec)} - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise CatalogError(f"{where}: dataset {name!r} has unknown field(s) {', '.join(sorted(unknown))}")
    served = _served_tasks(name, raw, where)
    for required in ("wds_name", "size", "metric"):
        if raw.get(required) in (None, ""):
            raise CatalogError(f"{where}: dataset {name!r} lacks {required!r}")
    unknown_tasks = [t for t in served if t not in task_names()]
    if unknown_tasks:
        raise CatalogError(f"{where}: dataset {name!r} has unknown task {unknown_tasks[0]!r}; known: {', '.join(task_names())}")
    try:
        spec = DatasetSpec(
            name=name,
            wds_name=str(raw["wds_name"]),
            url=str(raw.get("url") or HF_DATASETS_URL + str(raw["wds_name"])),
            task=served[0],
            split=str(raw.get("split") or "test"),
            size=int(raw["size"]),
            num_classes=None if raw.get("num_classes") is None else int(raw["num_classes"]),
            captions_per_image=None if raw.get("captions_per_image") is None else int(raw["captions_per_image"]),
            metric=str(raw["metric"]),
            collections=tuple(str(c) for c in raw.get("collections") or ()),
            languages=tuple(str(lang) for lang in raw.get("languages") or DEFAULT_LANGUAGES),
            templates=None if raw.get("templates") is None else int(raw["templates"]),
            metadata=tuple(str(f) for f in raw.get("metadata") or ()),
            datacomp=_datacomp_from_json(raw.get("datacomp")),
            column=None if raw.get("column") in (None, "") else str(raw["column"]),
            convert=None if raw.get("convert") in (None, "") else str(raw["convert"]),
            tasks=served,
            splits=(splits := _splits(name, raw.get("splits"), where)),
            val_proportion=None if raw.get("val_proportion") is None else float(raw["val_proportion"]),
        )
    except (TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: dataset {name!r}: {exc}") from None
    needed = get_task(spec.task).metadata
    if needed and spec.metadata != needed:
        raise CatalogError(f"{where}: dataset {name!r}: task {spec.task} groups by per-sample metadata; declare what "
                           f"its samples carry as \"metadata\": {json.dumps(list(needed))} (found "
                           f"{json.dumps(list(spec.metadata))})")
    if unsafe := unsafe_dataset_entry(spec.name, spec.wds_name, spec.url):
        raise CatalogError(f"{where}: dataset {unsafe}")
    if spec.size <= 0:
        raise CatalogError(f"{where}: dataset {name!r} has a non-positive size")
    if spec.templates is not None and spec.templates <= 0:
        raise CatalogError(f"{where}: dataset {name!r} has a non-positive template count")
    if splits.get(spec.split, spec.size) != spec.size:
        raise CatalogError(f"{where}: dataset {name!r}: its {spec.split} split has {splits[spec.split]} samples "
                           f"in 'splits' but 'size' says {spec.size}")
    if spec.val_proportion is not None and not 0 < spec.val_proportion < 1:
        raise CatalogError(f"{where}: dataset {name!r}: val_proportion must be between 0 and 1")
    for task in spec.tasks:
        problem = why_not_served(spec, task)
        if problem:
            raise CatalogError(f"{where}: dataset {name!r} cannot serve {task}: {problem}")
    return spec


def _datacomp_from_json(raw: Any) -> DataCompTask | None:
    if raw is None:
        return None
    keys = [f.name for f in fields(DataCompTask)]
    if not isinstance(raw, dict) or set(raw) != set(keys) or not all(isinstance(raw[k], str) and raw[k] for k in keys):
        raise ValueError(f"'datacomp' must be an object of the strings {', '.join(keys)}")
    return DataCompTask(**raw)


def _served_tasks(name: str, raw: dict, where: str) -> tuple[str, ...]:
    """`tasks`, or a mapping's older single `task` (read as a list of one); where both are given, `task` is the
    first of `tasks` (a manifest written by `to_json` carries both)."""
    tasks, task = raw.get("tasks"), raw.get("task")
    if tasks is None:
        if task in (None, ""):
            raise CatalogError(f"{where}: dataset {name!r} lacks 'tasks'")
        return (str(task),)
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t for t in tasks):
        raise CatalogError(f"{where}: dataset {name!r}: 'tasks' must be a non-empty list of task names")
    if task not in (None, tasks[0]):
        raise CatalogError(f"{where}: dataset {name!r}: 'task' ({task}) is not the first of 'tasks'")
    return tuple(dict.fromkeys(tasks))


def _splits(name: str, raw: Any, where: str) -> dict[str, int]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw.values()):
        raise CatalogError(f"{where}: dataset {name!r}: 'splits' must map split names to positive sample counts")
    return {str(k): v for k, v in raw.items()}


def why_not_served(spec: DatasetSpec, task: str) -> str:
    """Why the dataset cannot serve the task ('' where it can): its data is another type, or a split the task learns
    from (a linear probe's train split) is missing."""
    ours, first = get_task(task), get_task(spec.task)
    if ours.dataset_type != first.dataset_type:
        return f"{task} reads {ours.dataset_type} data and {spec.name} holds {first.dataset_type} data"
    missing = [s for s in ours.fit_splits(spec) if s not in spec.splits]
    if missing:
        return f"{task} learns from a {missing[0]} split and {spec.name} has none (splits: {', '.join(spec.splits)})"
    return ""


@functools.lru_cache(maxsize=8)
def _load_datasets(path: Path, stamp: tuple[int, int] | None = None) -> dict[str, DatasetSpec]:
    """`stamp` (mtime, size) keys the cache, so a mapping that `dataset add` rewrote is read again."""
    try:
        data = read_json(path.read_bytes(), f"dataset mapping {path}")
    except FileNotFoundError:
        raise CatalogError(f"dataset mapping {path} does not exist") from None
    except InvalidResultError as exc:
        raise CatalogError(str(exc)) from None
    raw = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise CatalogError(f"dataset mapping {path} needs a non-empty 'datasets' object")
    return datasets_from_json(raw, path.name)


def datasets_from_json(raw: Any, where: str) -> dict[str, DatasetSpec]:
    """Dataset specs from a `datasets` object (a mapping file's, a manifest's), validated field by field."""
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: 'datasets' must be an object")
    specs = {name: _dataset_from_json(name, entry, where) for name, entry in raw.items()}
    seen: dict[str, str] = {}
    for spec in specs.values():
        if spec.wds_name in seen:
            raise CatalogError(f"{where}: {spec.name!r} and {seen[spec.wds_name]!r} are the same webdataset")
        seen[spec.wds_name] = spec.name
    return specs


def load_datasets(path: str | Path | None = None) -> dict[str, DatasetSpec]:
    """Dataset specs by mapping key; the default is the shipped `dataset_mapping.json`."""
    path = Path(path).resolve() if path else mapping_path()
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None  # the reader names the missing file
    return dict(_load_datasets(path, stamp))


def _alias(name: str) -> str:
    """clip_benchmark spells one dataset many ways: wds/vtab/cifar10, wds_vtab-cifar10, vtab/cifar10."""
    name = name.strip()
    for prefix in ("wds/", "wds_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.replace("/", "-")


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """One (architecture, pretrained tag) of open_clip. Parameter counts are plain counts; GFLOPs are per sample
    (one image at native size, one text of `context_length` tokens), counted as 2 x multiply-adds like open_clip's
    published profile. None where a tower could not be built (a Hugging Face text tower while offline)."""

    arch: str
    pretrained: str
    params: int | None
    image_params: int | None
    text_params: int | None
    image_gflops: float | None
    text_gflops: float | None
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    resize_mode: str
    context_length: int | None
    embed_dim: int

    @property
    def ref(self) -> str:
        return f"{self.arch}:{self.pretrained}"

    @property
    def family(self) -> str:
        return model_family(self.arch)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "ModelSpec":
        raw = dict(raw)
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        return cls(**{f.name: raw.get(f.name) for f in fields(cls)})


_FAMILY_RULES = (
    (r"^coca_", "CoCa"),
    (r"^nllb-clip", "NLLB-CLIP"),
    (r"^(xlm-)?roberta-", "RoBERTa-CLIP"),
    (r"^EVA", "EVA"),
    (r"^MobileCLIP", "MobileCLIP"),
    (r"^PE-Core", "PE-Core"),
    (r"^ViTamin", "ViTamin"),
    (r"^convnext", "ConvNeXt"),
    (r"^RN\d", "ResNet"),
)


def model_family(model: str) -> str:
    """A coarse grouping for summaries: ViT-B, ViT-L, ConvNeXt, EVA, ResNet...; `custom` for local checkpoints."""
    if model.startswith(MODEL_REF_PREFIXES) or "/" in model:
        return "custom"
    for pattern, family in _FAMILY_RULES:
        if re.match(pattern, model):
            return family
    vit = re.match(r"^(ViT-[A-Za-z0-9]+)-", model)
    return vit.group(1) if vit else model


@functools.lru_cache(maxsize=4)
def _load_models(path: Path) -> tuple[ModelSpec, ...]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return tuple(ModelSpec.from_json(m) for m in data["models"])
    except FileNotFoundError:
        raise CatalogError(f"model snapshot {path} is missing; run `benchmark models --refresh`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CatalogError(f"model snapshot {path} is malformed ({exc}); run `benchmark models --refresh`") from None


def load_models(path: str | Path | None = None) -> list[ModelSpec]:
    """Every pretrained (arch, tag) of the snapshot, in open_clip's order."""
    return list(_load_models(Path(path).resolve() if path else MODELS_PATH))


def _is_checkpoint_ref(text: str) -> bool:
    arch, sep, path = text.partition(":")
    return bool(arch and sep) and ("/" in path or path.endswith((".pt", ".pth", ".bin", ".safetensors")))


def enumerate_pairs(
    models: list[tuple[str, str]], datasets: Iterable[DatasetSpec], languages: Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
) -> list[Pair]:
    """Every model x dataset x language x task the dataset supports; without languages, English only; without
    tasks, each dataset's first. A task that none of the datasets serves is an error that says why."""
    wanted = tuple(languages) if languages else DEFAULT_LANGUAGES
    chosen_tasks = tuple(dict.fromkeys(tasks or ()))
    for task in chosen_tasks:
        get_task(task)  # an unknown name gets the closest known ones
    datasets = list(datasets)
    pairs = []
    for spec in datasets:
        for task in [t for t in spec.tasks if t in chosen_tasks] if chosen_tasks else [spec.task]:
            only = get_task(task).languages
            for language in (lang for lang in wanted if lang in spec.languages and (only is None or lang in only)):
                for model, pretrained in models:
                    pairs.append(Pair(model, pretrained, spec.name, language=language, task=task))
    for task in chosen_tasks:
        if datasets and not any(task in spec.tasks for spec in datasets):
            reasons = [why_not_served(spec, task) or f"{spec.name} does not list it" for spec in datasets[:3]]
            more = f" (and {len(datasets) - 3} more)" if len(datasets) > 3 else ""
            raise CatalogError(f"no chosen dataset serves {task}: {'; '.join(reasons)}{more}")
    return pairs


def _listed(values: Iterable[str], limit: int = 12) -> str:
    values = list(values)
    return ", ".join(values[:limit]) + (f" and {len(values) - limit} more" if len(values) > limit else "")


def check_languages(languages: Iterable[str], chosen: Iterable[DatasetSpec], datasets: Mapping[str, DatasetSpec]) -> None:
    """Refuse a language no dataset has (with the closest known ones), or none of the chosen datasets has."""
    chosen = list(chosen)
    known = sorted({lang for spec in datasets.values() for lang in spec.languages})
    for lang in languages:
        if lang not in known:
            raise UnknownNameError("language", lang, known)
        if chosen and not any(lang in spec.languages for spec in chosen):
            if len(chosen) == 1:
                raise CatalogError(f"no pair matches: dataset {chosen[0].name} has no language {lang!r}; it has "
                                   f"{_listed(chosen[0].languages)}")
            raise CatalogError(f"no pair matches: none of the {len(chosen)} chosen datasets has language {lang!r}")


def check_pairs(pairs: Iterable[Pair], datasets: Mapping[str, DatasetSpec]) -> None:
    """Refuse, with one line, a pair no run can score: a language its dataset lacks, or one its task refuses
    (captioning with a model that has no text decoder)."""
    pairs = list(pairs)
    for pair in pairs:
        spec = datasets.get(pair.dataset)
        if spec is not None and pair.language not in spec.languages:
            raise CatalogError(f"dataset {pair.dataset} has no language {pair.language!r}; it has "
                               f"{_listed(spec.languages)}")
    check_task_pairs(pairs)


def clear_caches() -> None:
    """Forget cached snapshots (after a refresh wrote a new one)."""
    _load_models.cache_clear()


# ---------------------------------------------------------------- the catalog value

MAPPING_ENV = "BENCHMARK_DATASETS"


@dataclass(frozen=True)
class Catalog:
    """The datasets and models a run may name. A value passed down explicitly, never a process-wide default, so a
    user's own dataset mapping reaches every step (init, plan, launch, run, worker, sync, parse, report)."""

    datasets: Mapping[str, DatasetSpec]
    models: tuple[ModelSpec, ...]
    mapping_path: Path | None = None  # where the datasets came from (None: built in memory)

    def canonical_dataset(self, name: str) -> str:
        """The mapping key for any spelling of a dataset name; unknown names get the closest keys."""
        if name in self.datasets:
            return name
        wanted = _alias(name)
        for key, spec in self.datasets.items():
            if wanted in (_alias(key), _alias(spec.wds_name), _alias(spec.datacomp.task) if spec.datacomp else None):
                return key
        raise UnknownNameError("dataset", name, self.datasets)

    def canonical_pair(self, pair: Pair) -> Pair:
        """The pair as this catalog names it, whichever tool wrote it: dataset key (`wds/cifar10` -> `cifar10`;
        datasets it lacks pass through), and the dataset's own task where clip_benchmark wrote an alias of it
        (voc2007_multilabel as `zeroshot_classification`). An unknown task makes the record invalid."""
        dataset = self._dataset_keys.get(pair.dataset)
        if dataset is None:
            try:
                dataset = self.canonical_dataset(pair.dataset)
            except UnknownNameError:
                dataset = pair.dataset
            self._dataset_keys[pair.dataset] = dataset
        spec = self.datasets.get(dataset)
        try:
            task = canonical_task(pair.task, spec.task if spec else None)
        except UnknownNameError as exc:
            raise InvalidResultError(str(exc)) from None
        return replace(pair, dataset=dataset, task=task) if (dataset, task) != (pair.dataset, pair.task) else pair

    @functools.cached_property
    def _dataset_keys(self) -> dict[str, str]:  # spelling -> key, filled as records name them
        return {}

    def main_metric(self, dataset: str, task: str) -> str:
        """The leaderboard's metric: the catalog's for its datasets (as the task names it), else the task's."""
        spec, ours = self.datasets.get(dataset), get_task(task)
        if spec is None:
            return ours.main_metric
        if spec.metric in ours.metrics or ours.main_metric_for is None:
            return spec.metric
        return ours.main_metric_for(spec.metric)

    def dataset(self, name: str) -> DatasetSpec:
        """The spec for any spelling of a known dataset; unknown names get the closest keys."""
        return self.datasets[self.canonical_dataset(name)]

    def find_dataset(self, name: str) -> DatasetSpec | None:
        try:
            return self.dataset(name)
        except UnknownNameError:
            return None

    def select_datasets(self, patterns: Iterable[str] | None) -> list[DatasetSpec]:
        """Globs, collection names or any spelling of a dataset name; None or empty selects all."""
        datasets = self.datasets
        patterns = [p for p in (patterns or ()) if p.strip()]
        if not patterns:
            return list(datasets.values())
        collections = {k.lower(): v for k, v in self.collections().items()}
        chosen: dict[str, None] = {}
        for pattern in patterns:
            pattern = pattern.strip()
            if any(c in pattern for c in GLOB_CHARS):
                hits = [k for k in datasets if fnmatch.fnmatchcase(k, pattern) or fnmatch.fnmatchcase(datasets[k].wds_name, pattern)]
                if not hits:
                    raise CatalogError(f"no dataset matches {pattern!r}")
            elif pattern.lower() in collections:
                hits = collections[pattern.lower()]
            else:
                try:
                    hits = [self.canonical_dataset(pattern)]
                except UnknownNameError:
                    raise UnknownNameError("dataset or collection", pattern, [*datasets, *collections]) from None
            chosen.update(dict.fromkeys(hits))
        return [datasets[k] for k in chosen]

    def collections(self) -> dict[str, list[str]]:
        """Collection name -> dataset keys, plus one collection per task (the datasets that serve it)."""
        out: dict[str, list[str]] = {}
        for spec in self.datasets.values():
            for collection in (*spec.collections, *spec.tasks):
                out.setdefault(collection, []).append(spec.name)
        return out

    def specs_for(self, pairs: Iterable[Pair]) -> dict[str, DatasetSpec]:
        """The spec of each catalog dataset the pairs use, for a manifest; local datasets it lacks are left out."""
        return {p.dataset: self.datasets[p.dataset] for p in pairs if p.dataset in self.datasets}

    def select_models(self, patterns: Iterable[str] | None) -> list[tuple[str, str]]:
        """(model, pretrained) for each selector: a glob on ARCH:TAG or ARCH, an architecture, a pretrained tag or a
        family (case-insensitive), ARCH:TAG, or an explicit reference (local-dir:, hf-hub:, ARCH:/path/to/ckpt.pt)."""
        models = self.models
        patterns = [p.strip() for p in (patterns or ()) if p.strip()]
        if not patterns:
            return [(m.arch, m.pretrained) for m in models]
        named = self.model_collections()
        collections = {k.lower(): v for k, v in named.items()}
        refs = {m.ref for m in models}
        chosen: dict[tuple[str, str], None] = {}
        for pattern in patterns:
            if pattern.startswith(MODEL_REF_PREFIXES):
                hits = [parse_model_ref(pattern)]
            elif any(c in pattern for c in GLOB_CHARS):
                hits = [
                    (m.arch, m.pretrained)
                    for m in models
                    if fnmatch.fnmatchcase(m.ref, pattern) or fnmatch.fnmatchcase(m.arch, pattern)
                ]
                if not hits:
                    raise CatalogError(f"no model matches {pattern!r}")
            elif pattern in refs:
                hits = [parse_model_ref(pattern)]
            elif pattern.lower() in collections:
                hits = [(m.arch, m.pretrained) for m in collections[pattern.lower()]]
            elif _is_checkpoint_ref(pattern):
                hits = [parse_model_ref(pattern)]
            else:
                raise UnknownNameError("model", pattern, [*refs, *named])
            chosen.update(dict.fromkeys(hits))
        return list(chosen)

    def model_collections(self) -> dict[str, list[ModelSpec]]:
        """Names that select several models: architectures, pretrained tags and families."""
        out: dict[str, list[ModelSpec]] = {}
        for m in self.models:
            for name in dict.fromkeys((m.arch, m.pretrained, m.family)):
                out.setdefault(name, []).append(m)
        return out

    def find_model(self, arch: str, pretrained: str) -> ModelSpec | None:
        """The entry, or None for local-dir:, hf-hub: and checkpoint-path models (and unknown pairs)."""
        return self._model_index.get((arch, pretrained))

    @functools.cached_property
    def _model_index(self) -> dict[tuple[str, str], ModelSpec]:
        return {(m.arch, m.pretrained): m for m in self.models}


def load_catalog(mapping: str | Path | None = None, models_path: str | Path | None = None) -> Catalog:
    """The catalog of `mapping` (default: $BENCHMARK_DATASETS, else the shipped `dataset_mapping.json`)."""
    import os

    chosen = mapping or os.environ.get(MAPPING_ENV) or None
    path = Path(chosen).expanduser().resolve() if chosen else mapping_path()
    return Catalog(load_datasets(path), tuple(load_models(models_path)), path)
