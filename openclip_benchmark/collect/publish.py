"""`benchmark publish`: the leaderboard (Parquet and CSV), the metric CSVs with their intervals and the report page in
a Hugging Face dataset repository, through huggingface_hub, with a dataset card that says what was run, with which
versions and how to run it again.

A re-publish sends only what changed: each file's hash is compared with what the Hub lists for it (the git blob id
of a regular file, the sha256 of an LFS one), and whatever differs, and the stale files of the folders this command
writes, go in one commit. The token comes from `HF_TOKEN` and goes to huggingface_hub only: never printed or written."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..catalog import Catalog
from ..core.errors import BenchmarkError
from .parse import ResultFile, metric_tables

TOKEN_ENV = "HF_TOKEN"
CARD = "README.md"
METRICS, REPORT = "metrics", "report"  # the repo's folders this command owns (stale files there are deleted)
BOARD = ("leaderboard.parquet", "leaderboard.csv")
PACKAGES = ("torch", "open_clip", "clip_benchmark", "openclip_benchmark")  # keys of a result's run.versions
PYPI_NAMES = {"open_clip": "open_clip_torch", "openclip_benchmark": "openclip-benchmark"}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


class HubUnavailable(BenchmarkError):
    """The Hub did not answer, or answered with a server error: running the command again may help."""

    exit_code = 75


@dataclass(frozen=True)
class Change:
    path: str  # in the repo
    size: int
    state: str  # new | changed | deleted


@dataclass
class PublishOutcome:
    repo_id: str
    url: str
    changes: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    commit: str | None = None  # the commit made; None on a dry run or when nothing changed
    dry_run: bool = False


def check_repo_id(repo_id: str) -> str:
    """`owner/name`, as the Hub spells repo ids."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise BenchmarkError(f"bad repo id {repo_id!r}: {str(exc).splitlines()[0]}") from None
    if repo_id.count("/") != 1:
        raise BenchmarkError(f"bad repo id {repo_id!r}: give it as owner/name (your user or organisation, then a name)")
    return repo_id


def collect_files(metrics: Path, report: Path) -> dict[str, bytes]:
    """Repo path -> bytes: the leaderboard, every metric CSV parse wrote, and the report page with its PNGs."""
    if not all((metrics / name).is_file() for name in BOARD):
        raise BenchmarkError(f"no metric files in {metrics} (leaderboard.csv and .parquet); run `benchmark parse` first")
    files = {name: (metrics / name).read_bytes() for name in BOARD}
    for name in metric_tables():
        if (metrics / f"{name}.csv").is_file():
            files[f"{METRICS}/{name}.csv"] = (metrics / f"{name}.csv").read_bytes()
    if (report / "index.html").is_file():
        files[f"{REPORT}/index.html"] = (report / "index.html").read_bytes()
        files |= {f"{REPORT}/{png.name}": png.read_bytes() for png in sorted(report.glob("*.png"))}
    return files


def _versions(found: Iterable[ResultFile]) -> tuple[dict[str, Counter], Counter]:
    """Per package, how many results each version made; and how many ran at each precision."""
    versions: dict[str, Counter] = {name: Counter() for name in PACKAGES}
    precisions: Counter = Counter()
    for result in found:
        recorded = result.record.run.versions
        for name in PACKAGES:
            versions[name][str(recorded.get(name)) if isinstance(recorded, dict) and recorded.get(name) else "unknown"] += 1
        precisions[str(result.record.run.precision or "unknown")] += 1
    return versions, precisions


def dataset_card(repo_id: str, files: dict[str, bytes], found: list[ResultFile], catalog: Catalog) -> str:
    """README.md: front matter the Hub accepts (a viewer config per table) and what was run, with which versions,
    and the commands that run it again."""
    from huggingface_hub import DatasetCard, DatasetCardData

    pairs = [f.record.pair for f in found]
    models = sorted({(p.model, p.pretrained) for p in pairs})
    datasets = sorted({p.dataset for p in pairs})
    languages = sorted({p.language for p in pairs})
    tables = [path for path in files if path.endswith(".csv") and path.startswith(f"{METRICS}/")]
    rows = max((_rows(files[path]) for path in tables), default=0)
    configs = [{"config_name": "leaderboard", "data_files": "leaderboard.parquet", "default": True}]
    configs += [{"config_name": Path(path).stem, "data_files": path} for path in tables]
    meta = DatasetCardData(
        pretty_name=f"OpenCLIP benchmark results ({repo_id.split('/')[1]})",
        tags=["clip", "openclip", "zero-shot", "benchmark", "leaderboard"],
        task_categories=["zero-shot-image-classification"],
        size_categories=[next((name for limit, name in SIZE_CATEGORIES if rows < limit), "1M<n<10M")],
        configs=configs,
    )
    versions, precisions = _versions(found)
    tasks = Counter(p.task for p in pairs)
    model_refs = [f"{m}:{t}" if t else m for m, t in models]
    swept: dict[str, tuple[set[int], set[str]]] = {}  # model -> the image sizes it ran at besides its own, where
    for p in pairs:
        if p.preprocess.image_size:
            sizes, where = swept.setdefault(f"{p.model}:{p.pretrained}" if p.pretrained else p.model, (set(), set()))
            sizes.add(p.preprocess.image_size)
            where.add(p.dataset)
    lines = [
        "# OpenCLIP benchmark results", "",
        f"{len(models)} models on {len(datasets)} datasets: {len(pairs)} results "
        f"({', '.join(f'{n} {task}' for task, n in sorted(tasks.items()))}), evaluated with clip_benchmark's metrics "
        "by `benchmark` (openclip-benchmark). Each dataset's score is its main metric.", "",
        "## Files", "",
        "| file | what |", "| --- | --- |",
        "| `leaderboard.parquet`, `leaderboard.csv` | a row per (model, pretrained, preprocessing), a column per dataset "
        "(its main metric), averages over all datasets and over collections, GFLOPs, seconds and dollars |",
        *(f"| `{path}` | {_TABLE_TEXT.get(Path(path).stem, 'one row per result: every metric')} |" for path in tables),
    ]
    if f"{REPORT}/index.html" in files:
        lines.append(f"| `{REPORT}/index.html` | the interactive report (offline; open it in a browser after download), "
                     "with its charts as PNGs beside it |")
    lines += ["", "## What was run", "", f"Models ({len(models)}): " + ", ".join(f"`{m}`" for m in model_refs), "",
              f"Datasets ({len(datasets)}): " + ", ".join(
                  f"`{d}` ({catalog.main_metric(d, next(p.task for p in pairs if p.dataset == d))})" for d in datasets), "",
              f"Languages: {', '.join(languages)}. Precision: "
              + ", ".join(f"{name} ({n} results)" for name, n in precisions.most_common()) + ".", ""]
    if swept:
        lines += ["Resolution sweeps (image sizes besides the native one): "
                  + "; ".join(f"`{m}` at {', '.join(map(str, sorted(s)))}" for m, (s, _) in sorted(swept.items())), ""]
    lines += ["## Versions", "", "As recorded in each result's `run` block.", "", "| package | version | results |",
              "| --- | --- | ---: |"]
    lines += [f"| {name} | {version} | {n} |" for name in PACKAGES for version, n in versions[name].most_common()]
    pins = " ".join(f"{PYPI_NAMES.get(name, name)}=={versions[name].most_common(1)[0][0]}" for name in PACKAGES
                    if versions[name] and versions[name].most_common(1)[0][0] != "unknown")
    init = f"benchmark init -m {','.join(model_refs)} -d {','.join(datasets)}" + (
        f" -l {','.join(languages)}" if languages != ["en"] else "")
    lines += ["", "## How to reproduce", "", "```bash"]
    lines += [f"pip install {pins}  # the versions above"] if pins else []
    lines += [init, "benchmark launch --budget 50  # SkyPilot managed jobs; or --backend local on this machine"]
    lines += [f"benchmark run -m {m} -d {','.join(sorted(where))} --image-size {','.join(map(str, sorted(s)))}"
              for m, (s, where) in sorted(swept.items())]
    lines += ["benchmark sync --store s3://bucket/prefix  # where the jobs wrote their results", "benchmark parse",
              "benchmark report", f"benchmark publish {repo_id}", "```", ""]
    return str(DatasetCard(f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(lines)))


_TABLE_TEXT = {
    "leaderboard_intervals": "a row per leaderboard cell: its value and 95% interval (binomial or bootstrap)",
    "resolution_sweep": "main metric by image size, a row per model and dataset evaluated at several sizes",
}


def _rows(csv_bytes: bytes) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(csv_bytes.decode("utf-8")))) - 1


def _hub_error(exc: Exception, repo_id: str, endpoint: str | None) -> BenchmarkError:
    """One line for what the Hub (or the way to it) said; never the token, which no message of these holds."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    where = endpoint or "the Hub"
    if isinstance(exc, RepositoryNotFoundError):
        return BenchmarkError(f"{repo_id}: no such dataset repo at {where}, or this token cannot see it")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        message = exc.server_message or str(exc).splitlines()[0]
        if status in (401, 403):
            return BenchmarkError(f"{repo_id}: {where} refused the token in ${TOKEN_ENV} ({status}: {message})")
        error = HubUnavailable if status >= 500 or status == 429 else BenchmarkError
        return error(f"{repo_id}: {where} answered {status}: {' '.join(message.split())}")
    if isinstance(exc, ValueError):  # huggingface_hub's check of the card (validate-yaml), or a malformed answer
        return BenchmarkError(f"{repo_id}: {' '.join(str(exc).split())}")
    return HubUnavailable(f"{repo_id}: cannot reach {where} ({type(exc).__name__})")


def _remote(api, repo_id: str) -> dict[str, Any]:
    """Repo path -> RepoFile of every file in the repo; empty where there is no repo yet."""
    from huggingface_hub import RepoFile
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return {f.path: f for f in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True)
                if isinstance(f, RepoFile)}
    except RepositoryNotFoundError:
        return {}


def _same(data: bytes, remote) -> bool:
    from huggingface_hub.utils.sha import git_hash

    if remote.lfs is not None:
        return remote.lfs.sha256 == hashlib.sha256(data).hexdigest()
    return remote.blob_id == git_hash(data)


def publish(repo_id: str, files: dict[str, bytes], *, private: bool = False, endpoint: str | None = None,
            dry_run: bool = False) -> PublishOutcome:
    """Upload what differs from the repo's files (creating the repo first), and delete the stale files of the
    folders this command writes, in one commit; with `dry_run`, only say what that would be."""
    import httpx
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not dry_run:
        raise BenchmarkError(f"no Hugging Face token: set {TOKEN_ENV} (a token with write access to {repo_id})")
    api = HfApi(endpoint=endpoint, token=token)
    try:
        if not dry_run:
            api.create_repo(repo_id, repo_type="dataset", private=True if private else None, exist_ok=True)
        remote = _remote(api, repo_id)
        outcome = PublishOutcome(repo_id, f"{api.endpoint}/datasets/{repo_id}", dry_run=dry_run)
        for path, data in sorted(files.items()):
            if path in remote and _same(data, remote[path]):
                outcome.unchanged.append(path)
            else:
                outcome.changes.append(Change(path, len(data), "changed" if path in remote else "new"))
        folders = {path.split("/")[0] + "/" for path in files if "/" in path}
        outcome.changes += [Change(path, remote[path].size, "deleted") for path in sorted(remote)
                            if path not in files and path.startswith(tuple(folders))]
        if dry_run or not outcome.changes:
            return outcome
        operations = [CommitOperationDelete(c.path) if c.state == "deleted" else CommitOperationAdd(c.path, files[c.path])
                      for c in outcome.changes]
        counts = Counter(c.state for c in outcome.changes)
        info = api.create_commit(repo_id, operations, repo_type="dataset",
                                 commit_message=f"benchmark publish: {', '.join(f'{n} {s}' for s, n in counts.items())}")
        outcome.commit = info.oid
        return outcome
    except (httpx.HTTPError, HfHubHTTPError, ValueError, OSError) as exc:  # huggingface_hub's and httpx's
        raise _hub_error(exc, repo_id, endpoint) from None
