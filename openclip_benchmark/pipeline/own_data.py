"""Use cases for your own image-caption data: add it as a benchmark dataset (fetch, write, register), list and
remove what was added. From then on the dataset is one of the mapping's, for init, plan, launch, run and report."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..catalog import DatasetSpec
from ..core.errors import BenchmarkError
from ..core.paths import check_output_folder
from ..datasets.captions import CaptionDataset, FetchOptions, build_caption_dataset, remove_caption_dataset
from ..datasets.user_mapping import DEFAULT_MAPPING_NAME, OWN_COLLECTION, check_mapping, check_name, own_dataset, \
    register, unregister, user_datasets
from ..tasks.zeroshot_retrieval import TASK as RETRIEVAL


def user_mapping(mapping: str | Path | None, root: str | Path) -> Path:
    """The mapping `dataset` commands edit: the one given, else `<root>/dataset_mapping.json`. The datasets root
    is checked here, where every `dataset` command starts: a folder, or nothing yet."""
    check_output_folder(root, "--root")
    return Path(mapping) if mapping else Path(root) / DEFAULT_MAPPING_NAME


def add_dataset(name: str, table: str | Path, root: str | Path, mapping: Path, *, url_col: str = "url",
                caption_col: str = "caption", options: FetchOptions = FetchOptions()) -> CaptionDataset:
    """Fetch and write `wds_<name>` under `root`; register it in `mapping` when at least one row gave an image.
    The name and the mapping are checked first: nothing is fetched or written for a run that could not register."""
    check_name(name)
    check_mapping(mapping)
    built = build_caption_dataset(name, table, root, url_col=url_col, caption_col=caption_col, options=options)
    if built.folder is not None:
        register(mapping, DatasetSpec(
            name=name, wds_name=built.folder.name, url=built.folder.resolve().as_uri(), task=RETRIEVAL.name,
            split="test", size=built.images, num_classes=None,
            captions_per_image=max(1, round(built.captions / built.images)), metric=RETRIEVAL.main_metric,
            collections=(OWN_COLLECTION,), languages=("en",)))
    return built


def list_datasets(mapping: Path) -> list[DatasetSpec]:
    return user_datasets(mapping)


def dataset_folder(spec: DatasetSpec) -> Path:
    return Path(unquote(urlparse(spec.url).path))


def remove_dataset(name: str, mapping: Path, root: str | Path) -> list[Path]:
    """Drop the mapping entry, then the webdataset, its download cache and status tables. A dataset whose folder is
    not in the datasets root `root` is refused before anything changes: a removal never leaves that root."""
    folder = dataset_folder(own_dataset(mapping, name))
    if os.path.realpath(folder.parent) != os.path.realpath(root):
        raise BenchmarkError(f"dataset {name!r} is at {folder}, not in the datasets root {root}: pass the --root that "
                             "holds it")
    unregister(mapping, name)
    return remove_caption_dataset(name, root)
