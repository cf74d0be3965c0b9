"""Paths from outside. Names read from data (store keys, a dataset mapping's keys, folders and URLs): the one rule
for what may become a file or folder name below a root, checked where the data is read. Folders the user names for
a command's output: checked before the command does any work."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import BenchmarkError

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_path(path: str) -> bool:
    """Could escape the root it is joined to or hide what it names: empty, absolute, '.', '..' or empty parts, a
    backslash, a control character."""
    return (not path or path.startswith("/") or "\\" in path or bool(CONTROL.search(path))
            or any(part in ("", ".", "..") for part in path.split("/")))


def unsafe_dataset_entry(name: str, wds_name: str, url: str) -> str | None:
    """Why a dataset mapping entry could reach outside its folders, or None. Its key and webdataset name become
    folder names (`<root>/<wds_name>`, `wds_<key>`, the download cache's), and a `file://` URL is the folder that
    `run` reads and `dataset remove` deletes."""
    if unsafe_path(name):
        return f"name {name!r} is not a relative name (no '..', '.', empty or absolute parts, backslashes, controls)"
    if unsafe_path(wds_name) or "/" in wds_name:
        return f"wds_name {wds_name!r} is not one folder name"
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        if parsed.netloc not in ("", "localhost") or not path.startswith("/") or unsafe_path(path[1:].rstrip("/")):
            return f"url {url!r} is not an absolute file:// folder without '.' or '..' parts"
    elif parsed.scheme not in ("http", "https") or not parsed.netloc or CONTROL.search(url):
        return f"url {url!r} is not an http(s):// or file:// URL"
    return None


def check_output_folder(path: str | Path, option: str) -> Path:
    """A folder a command will write into: one already, or one that can be made (its nearest existing ancestor is a
    folder). Checked before any work, so a long run never ends on a path that could not take its output."""
    path = Path(path)
    nearest = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not nearest.is_dir():
        where = "" if nearest == path.absolute() else f": {nearest}"
        raise BenchmarkError(f"{option} {path}{where} is not a folder")
    return path
