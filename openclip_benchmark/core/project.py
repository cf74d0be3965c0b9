"""The project folder: `benchmark.toml`, found upwards from the working folder like `pyproject.toml`, holds the
defaults of every command, so a working folder remembers its store, mapping, tracker and GPUs.

Precedence, for each setting: the command's option, then its environment variable, then the project file, then the
shipped default. Relative paths in the file are relative to the file's folder. The file never holds a credential:
keys that look like one are refused, as are URLs with a user or password in them; credentials stay in the
environment. Pure: reads and writes one small file.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .compute import DEFAULT_CACHE_DIR, DEVICES, PRECISIONS
from .errors import BenchmarkError
from .jsonio import atomic_write_text

PROJECT_FILE = "benchmark.toml"
CREDENTIAL_WORDS = ("secret", "token", "password", "passwd", "passphrase", "credential", "key", "auth", "cookie")


class ProjectError(BenchmarkError):
    """A malformed project file: the message names the file and the line."""


@dataclass(frozen=True)
class Setting:
    key: str
    env: tuple[str, ...]  # checked in this order; the first one set wins
    kind: str  # store | url | path | list | number | integer | bool | choice
    default: Any  # the shipped default (None: the command's own, described by `shipped`)
    shipped: str  # the shipped default in words
    help: str
    choices: tuple[str, ...] = ()


SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("store", ("BENCHMARK_STORE",), "store", "results", "results",
            "Results store: a folder or s3://bucket/prefix (Cloudflare R2 or any S3)."),
    Setting("endpoint_url", ("R2_ENDPOINT_URL", "AWS_ENDPOINT_URL"), "url", None, "AWS S3",
            "S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com."),
    Setting("dataset_mapping", ("BENCHMARK_DATASETS",), "path", None, "the shipped dataset_mapping.json",
            "Dataset mapping JSON: the catalog's datasets and your own."),
    Setting("tracker", ("BENCHMARK_TRACKER",), "path", "results.csv", "results.csv",
            "The tracker CSV: one row per pair, its status and estimates."),
    Setting("results", ("BENCHMARK_RESULTS",), "path", "results", "results",
            "The local results folder (result JSONs, as `sync` mirrors the store)."),
    Setting("gpus", ("BENCHMARK_GPUS",), "list", None, "every GPU in the table",
            "Allowed GPUs, comma-separated (L4,A10G,H100)."),
    Setting("clouds", ("BENCHMARK_CLOUDS",), "list", None, "every cloud in the price table",
            "Allowed clouds, comma-separated (aws,gcp)."),
    Setting("spot", ("BENCHMARK_SPOT",), "bool", True, "true",
            "Price and run on spot instances (recovered on preemption); false: on demand."),
    Setting("budget", ("BENCHMARK_BUDGET",), "number", None, "no limit",
            "Dollars `launch` spends at most, in total."),
    Setting("precision", ("BENCHMARK_PRECISION",), "choice", "auto", "auto",
            "auto = amp on a GPU, fp32 on a CPU.", PRECISIONS),
    Setting("device", ("BENCHMARK_DEVICE",), "choice", "auto", "auto",
            "auto = a GPU when torch sees one, else the CPU.", DEVICES),
    Setting("batch_size", ("BENCHMARK_BATCH_SIZE",), "integer", 64, "64",
            "Evaluation batch size (sizes GPU memory)."),
    Setting("cache_dir", ("BENCHMARK_CACHE_DIR",), "path", DEFAULT_CACHE_DIR, DEFAULT_CACHE_DIR,
            "Where datasets and weights are cached."),
    Setting("dataset_root", ("BENCHMARK_DATASET_ROOT",), "path", None, "download each dataset",
            "Folder of wds_<name>/ datasets, used instead of downloading."),
)}


@dataclass(frozen=True)
class Project:
    """A read, validated `benchmark.toml`: values with paths resolved against its folder, and the line of each."""

    path: Path
    values: Mapping[str, Any]
    lines: Mapping[str, int]

    def where(self, key: str) -> str:
        return f"{self.path}:{self.lines[key]}" if key in self.lines else str(self.path)


@dataclass(frozen=True)
class Effective:
    """One setting as a command sees it, and where it came from."""

    setting: Setting
    value: Any
    source: str  # environment | project | shipped
    where: str  # the variable, the file and line, or "shipped default"


def find_project(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest `benchmark.toml` in the folder or above it."""
    folder = Path(start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate / PROJECT_FILE
    return None


def load_project(start: str | os.PathLike | None = None) -> Project | None:
    found = find_project(start)
    return read_project(found) if found else None


def read_project(path: Path) -> Project:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ProjectError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_project(text, path)


def parse_project(text: str, path: Path) -> Project:
    import tomllib  # here, not at the top: `benchmark --help` imports this module and never reads the file

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        what = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        line = where.group(1) if where else str(max(1, len(text.splitlines())))  # at the end of the document
        raise ProjectError(f"{path}:{line}: not valid TOML: {what}") from None
    lines = _key_lines(text)
    values = {}
    for key, value in raw.items():
        at = f"{path}:{lines[key]}" if key in lines else str(path)
        values[key] = parse_value(key, value, path.parent, at)
    return Project(path, values, {k: lines[k] for k in values if k in lines})


def parse_value(key: str, value: Any, base: Path, at: str) -> Any:
    """A setting's value from the file, checked against its kind; relative paths resolve against `base`."""
    if looks_like_credential(key):
        raise ProjectError(f"{at}: {key!r} looks like a credential; {PROJECT_FILE} never holds one (set it in the "
                           "environment, e.g. AWS_SECRET_ACCESS_KEY, HF_TOKEN)")
    setting = SETTINGS.get(key)
    if setting is None:
        import difflib

        close = difflib.get_close_matches(key, list(SETTINGS), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(SETTINGS)}"
        raise ProjectError(f"{at}: unknown setting {key!r}{hint}")
    kind = setting.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise ProjectError(f"{at}: {key} must be true or false, not {value!r}")
        return value
    if kind in ("number", "integer"):
        wanted = int if kind == "integer" else (int, float)
        if (isinstance(value, bool) or not isinstance(value, wanted) or not math.isfinite(value)
                or value < (1 if kind == "integer" else 0)):
            raise ProjectError(f"{at}: {key} must be a {'whole number >= 1' if kind == 'integer' else 'number >= 0'}, "
                               f"not {value!r}")
        return value
    if kind == "list":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ProjectError(f"{at}: {key} must be a list of names, like [\"L4\", \"A10G\"]")
        return tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    if not isinstance(value, str) or not value.strip():
        raise ProjectError(f"{at}: {key} must be a non-empty string, not {value!r}")
    if kind == "choice":
        if value not in setting.choices:
            raise ProjectError(f"{at}: {key} must be one of {', '.join(setting.choices)}, not {value!r}")
        return value
    if re.match(r"^[a-z][a-z0-9+.-]*://[^/]*@", value, re.IGNORECASE):
        raise ProjectError(f"{at}: {key} has a user or password in its URL; credentials stay in the environment")
    if kind == "url":
        if not value.startswith(("http://", "https://")):
            raise ProjectError(f"{at}: {key} must be an http(s) URL")
        return value
    if kind == "store" and "://" in value:
        return value
    return str(resolve_path(value, base))


def resolve_path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def looks_like_credential(key: str) -> bool:
    return any(word in key.lower() for word in CREDENTIAL_WORDS)


def _key_lines(text: str) -> dict[str, int]:
    """The line of each top-level `key = value`: tomllib keeps no positions."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        table = re.match(r"^\s*\[+\s*([^\].]+)", line)
        if table:  # a table holds no settings: it is refused by its name, at its header
            lines.setdefault(table.group(1).strip().strip("\"'"), number)
            break
        found = re.match(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""", line)
        if found:
            lines.setdefault(next(g for g in found.groups() if g), number)
    return lines


def effective_settings(project: Project | None, environ: Mapping[str, str] | None = None) -> list[Effective]:
    """Each setting as a command without options sees it: environment, then project file, then shipped default."""
    environ = os.environ if environ is None else environ
    out = []
    for setting in SETTINGS.values():
        variable = next((v for v in setting.env if environ.get(v)), None)
        if variable:
            out.append(Effective(setting, environ[variable], "environment", f"${variable}"))
        elif project is not None and setting.key in project.values:
            out.append(Effective(setting, project.values[setting.key], "project", project.where(setting.key)))
        else:
            out.append(Effective(setting, setting.default, "shipped", "shipped default"))
    return out


def project_file_for(inside: str | os.PathLike, start: str | os.PathLike | None = None) -> Path | None:
    """The project file a command run in `start` (the working folder) records `inside`'s settings in: the nearest
    `benchmark.toml` at or above `start`, else a new one in `start` when `inside` lies within it (as `dataset add`'s
    default ./datasets does); None when neither holds, so no folder becomes a project by accident."""
    folder = Path(start or Path.cwd()).resolve()
    found = find_project(folder)
    if found is None and Path(inside).expanduser().resolve().is_relative_to(folder):
        found = folder / PROJECT_FILE
    return found


def remember(key: str, value: str | os.PathLike, path: Path) -> bool:
    """Write one setting into the project file `path` (made if missing); other lines, comments included, stay as
    they are, and paths are written relative to the file's folder. Returns whether the file changed."""
    setting = SETTINGS[key]
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if setting.kind in ("path", "store") and "://" not in str(value):
        value = _relative(Path(value).expanduser().resolve(), path.parent)
    current = parse_project(text, path).values.get(key)
    if current is not None and parse_value(key, str(value), path.parent, str(path)) == current:
        return False
    line = f"{key} = {json.dumps(str(value), ensure_ascii=False)}"
    known = _key_lines(text)
    if key in known:
        rows = text.splitlines()
        rows[known[key] - 1] = line
        text = "\n".join(rows) + "\n"
    else:
        header = "" if text else "# openclip-benchmark project settings: option > environment > this file > shipped defaults\n"
        text = header + text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    parse_project(text, path)  # what will be written reads back
    atomic_write_text(path, text)
    return True


def _relative(path: Path, base: Path) -> str:
    """Relative to the file's folder when inside it, so the project folder can move; absolute otherwise."""
    return path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
