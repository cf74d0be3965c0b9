"""The user's dataset mapping: where `dataset add` registers a dataset and `dataset list|remove` find and drop it.

The file has the shipped `dataset_mapping.json`'s format and starts as a copy of it, so passing it once
(`--dataset-mapping FILE` or `BENCHMARK_DATASETS=FILE`) keeps every catalog dataset and adds the user's own; those
carry the `own` collection. A name the shipped catalog knows (in any clip_benchmark spelling) is refused, so a user
entry never shadows a benchmark. Every write is validated as a mapping file is read, then written atomically under
a file lock; the shipped file itself is never written.
"""

from __future__ import annotations

import re
from pathlib import Path

from filelock import FileLock

from ..catalog import Catalog, CatalogError, DatasetSpec, datasets_from_json, load_datasets, mapping_path
from ..core.errors import BenchmarkError, InvalidResultError, UnknownNameError
from ..core.jsonio import atomic_write_json, read_json
from ..core.paths import check_output_folder

OWN_COLLECTION = "own"
DEFAULT_MAPPING_NAME = "dataset_mapping.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(name: str) -> str:
    """A name that is safe as a folder (`wds_<name>`) and free in the shipped catalog."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise BenchmarkError(f"dataset name {name!r} must be letters, digits, '_', '-' or '.' (at most 100)")
    try:
        taken = Catalog(load_datasets(), ()).canonical_dataset(name)
    except UnknownNameError:
        return name
    raise BenchmarkError(f"dataset name {name!r} is the catalog's dataset {taken!r}; choose another name")


def check_mapping(path: str | Path) -> None:
    """What `register` will write, checked before anything is fetched: not the shipped file, valid if it exists,
    and in a folder (or where one can be made)."""
    path = Path(path)
    _read(path)
    check_output_folder(path.parent, "dataset mapping folder")


def _read(path: Path) -> dict:
    if _is_shipped(path):
        raise BenchmarkError(f"{path} is the shipped dataset mapping; pass your own file with --dataset-mapping")
    source = path if path.is_file() else mapping_path()
    try:
        data = read_json(source.read_bytes(), f"dataset mapping {source}")
    except (OSError, InvalidResultError) as exc:
        raise CatalogError(f"dataset mapping {source} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise CatalogError(f"dataset mapping {source} needs a 'datasets' object")
    datasets_from_json(data["datasets"], source.name)
    return data


def _is_shipped(path: Path) -> bool:
    return path.resolve() == mapping_path().resolve()


def _write(path: Path, data: dict) -> None:
    datasets_from_json(data["datasets"], path.name)  # a bad entry fails before anything is written
    atomic_write_json(path, data)


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=60)


def register(path: str | Path, spec: DatasetSpec) -> None:
    """Add or replace the user's entry `spec.name`; the first write copies the shipped mapping."""
    path = Path(path)
    with _lock(path):
        data = _read(path)
        entry = spec.to_json()
        del entry["name"]
        data["datasets"][spec.name] = entry
        _write(path, data)


def user_datasets(path: str | Path) -> list[DatasetSpec]:
    """The entries `dataset add` registered (the `own` collection); none while the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    specs = datasets_from_json(_read(path)["datasets"], path.name)
    return [s for s in specs.values() if OWN_COLLECTION in s.collections]


def own_dataset(path: str | Path, name: str) -> DatasetSpec:
    """The user's entry `name`; catalog entries are not theirs to remove. Reads only: no lock, no folder made."""
    own = {s.name: s for s in user_datasets(path)}
    if name not in own:
        raise UnknownNameError("dataset of your own", name, own)
    return own[name]


def unregister(path: str | Path, name: str) -> DatasetSpec:
    """Drop the user's entry `name` and return it. Looked up before the lock is taken, so a refused removal leaves
    no lock file behind; again under it, as another process may have changed the file."""
    path = Path(path)
    own_dataset(path, name)
    with _lock(path):
        spec = own_dataset(path, name)
        data = _read(path)
        del data["datasets"][name]
        _write(path, data)
    return spec
