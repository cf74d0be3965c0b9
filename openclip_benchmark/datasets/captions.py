"""Your own image-caption table becomes a retrieval webdataset in clip_benchmark's layout, fetched by img2dataset.

Read the table (CSV, TSV or Parquet) -> check each row (blank, not http(s), duplicate; captions longer than the text
context are counted, open_clip's tokenizer truncates them at evaluation) -> fetch the URLs the cache lacks with
img2dataset (processes x threads, timeout, retries; bodies kept as the server sent them: no resize, no re-encode, so
each model's own preprocessing applies) -> check each body (over --max-bytes, a web page, not decodable) -> group the
captions of one URL on one image -> write `wds_<name>/` in a temp folder and rename it into place -> write the
per-row status table beside it.

The cache `<root>/.cache_<name>/images/` keeps each accepted body under the SHA-256 of its URL, so a re-run asks
only for the URLs without one (failed rows are asked again) and rebuilds the webdataset only when its content changed.
img2dataset reads a whole body before it hands it over, so --max-bytes rejects a body after the transfer.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

from ..core.errors import BenchmarkError, InvalidResultError
from ..core.jsonio import atomic_write_bytes, atomic_write_json, read_json
from ..core.wds import write_shards
from . import public_urls

OK = "ok"
FAILED = "failed"
WDS_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}  # what clip_benchmark's wds reader decodes
STATUS_COLUMNS = ("row", "url", "caption", "status", "reason", "error", "truncated")
SOURCE_FILE = "source.json"


@dataclass(frozen=True)
class FetchOptions:
    """img2dataset's knobs, and the checks it lacks."""

    processes: int | None = None  # None: `fetch_processes`, by the number of URLs
    threads: int = 64
    timeout: float = 10.0
    retries: int = 1
    max_bytes: int = 20 * 2**20
    shard_size: int = 1000  # samples per tar
    context_length: int = 77  # open_clip's text context: longer captions are counted as truncated
    allow_private_urls: bool = False  # loopback, link-local and private addresses too (`public_urls`)


URLS_PER_PROCESS = 5000


def fetch_processes(urls: int) -> int:
    """img2dataset processes for this many URLs: one per 5,000, up to 4 CPUs. Each process (and img2dataset's
    logger) is spawned and imports img2dataset, about 4 s here, while one process of 64 threads fetches 700-1,000
    images/s from a fast host: a small table is faster on one."""
    return max(1, min(4, os.cpu_count() or 1, -(-urls // URLS_PER_PROCESS)))


@dataclass
class Row:
    row: int  # 1-based data row of the table
    url: str
    caption: str
    status: str = OK
    reason: str = ""
    error: str = ""
    truncated: bool = False

    def fail(self, reason: str, error: str = "") -> None:
        self.status, self.reason, self.error = FAILED, reason, " ".join((error or reason).split())


@dataclass
class CaptionDataset:
    """What one `dataset add` did."""

    name: str
    folder: Path | None  # None when no row gave an image
    status_path: Path
    rows: list[Row]
    images: int = 0
    captions: int = 0
    fetched: int = 0  # URLs asked for in this run
    fetched_ok: int = 0
    fetch_seconds: float = 0.0
    rebuilt: bool = False
    failed: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return sum(r.status == OK for r in self.rows)

    @property
    def truncated(self) -> int:
        return sum(r.truncated for r in self.rows if r.status == OK)

    @property
    def images_per_s(self) -> float:
        return self.fetched_ok / self.fetch_seconds if self.fetch_seconds > 0 else 0.0


# ---------------------------------------------------------------- the table


def read_table(path: str | Path, url_col: str, caption_col: str) -> list[Row]:
    """Rows of a CSV, TSV (by suffix) or Parquet file; a file that cannot be read as a table is one BenchmarkError."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"table {path} does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many kinds for a file that is not Parquet
            raise BenchmarkError(f"{path} is not a readable Parquet file: {exc}") from None
    else:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BenchmarkError(f"{path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                                 "save it as UTF-8") from None
        if not text.strip():
            raise BenchmarkError(f"{path} is empty")
        sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False)
        except (pd.errors.ParserError, csv.Error) as exc:
            raise BenchmarkError(f"{path} is not a valid {'TSV' if sep == chr(9) else 'CSV'} table: {exc}") from None
    columns = [str(c) for c in df.columns]
    for col, option in ((url_col, "--url-col"), (caption_col, "--caption-col")):
        if col not in columns:
            close = difflib.get_close_matches(col, columns, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r} ({option} {close[0]})?" if close else f"; pass {option}"
            raise BenchmarkError(f"{path} has no column {col!r} (columns: {', '.join(columns) or 'none'}){hint}")
    if df.empty:
        raise BenchmarkError(f"{path} has a header but no rows")
    cell = lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v)  # noqa: E731
    return [Row(i + 1, cell(u).strip(), " ".join(cell(c).split()))
            for i, (u, c) in enumerate(zip(df[url_col].tolist(), df[caption_col].tolist()))]


def check_rows(rows: list[Row], context_length: int) -> None:
    """Mark rows that cannot become a sample; count captions longer than the text context."""
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        parsed = urlparse(row.url)
        if not row.url:
            row.fail("blank url")
        elif parsed.scheme not in ("http", "https") or not parsed.netloc:
            row.fail("not an http(s) url", f"not an http(s) URL: {row.url[:200]}")
        elif not row.caption:
            row.fail("blank caption")
        elif (row.url, row.caption) in seen:
            row.fail("duplicate row", f"same url and caption as row {seen[(row.url, row.caption)]}")
        else:
            seen[(row.url, row.caption)] = row.row
    _mark_truncated([r for r in rows if r.status == OK], context_length)


def _mark_truncated(rows: list[Row], context_length: int) -> None:
    for row, cut in zip(rows, truncated_captions([r.caption for r in rows], context_length)):
        row.truncated = cut


def truncated_captions(captions: list[str], context_length: int) -> list[bool]:
    """Which captions open_clip's tokenizer truncates: it keeps `context_length - 2` BPE tokens between its start and
    end tokens. A token spans at least one UTF-8 byte, so only captions with more bytes than that need the tokenizer
    (and open_clip's import)."""
    budget = context_length - 2
    out = [False] * len(captions)
    long = [i for i, caption in enumerate(captions) if len(caption.encode("utf-8")) > budget]
    if long:
        from open_clip.tokenizer import SimpleTokenizer

        tokenizer = SimpleTokenizer()
        for i in long:
            out[i] = len(tokenizer.encode(captions[i])) > budget
    return out


# ---------------------------------------------------------------- fetching


def url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def download_reason(message: str | None) -> str:
    """img2dataset's error text (urllib's) as a short reason for the summary."""
    text = message or ""
    low = text.lower()
    if "infinite loop" in low:
        return "redirect loop"
    status = re.match(r"HTTP Error (\d{3})", text)
    if status:
        return f"http {status[1]}"
    if "timed out" in low:
        return "timeout"
    if "x-robots-tag" in low:
        return "disallowed by X-Robots-Tag"
    if public_urls.REASON in low:
        return public_urls.REASON
    if "urlopen error" in low or "connection" in low:
        return "connection error"
    return "download error"


def check_body(body: bytes, max_bytes: int) -> tuple[str, str] | None:
    """(reason, message) for a body that cannot be a sample; None for a decodable image within the size limit."""
    from PIL import Image

    if max_bytes and len(body) > max_bytes:
        return "over --max-bytes", f"body of {len(body)} bytes is over --max-bytes {max_bytes}"
    if body[:512].lstrip().startswith(b"<"):
        return "html, not an image", "the server answered a web page (HTML), not an image"
    try:
        with Image.open(io.BytesIO(body)) as img:
            img.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for broken data
        return "corrupt image", f"not a decodable image: {exc}"
    return None


def fetch(urls: list[str], images: Path, options: FetchOptions, work: Path, root: Path) -> dict[str, tuple[str, str]]:
    """Download `urls` with img2dataset into `work` (inside the datasets `root`), keep the accepted bodies in
    `images/<url_key>`; the failures by URL as (reason, message)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (img2dataset's) asks PyPI on import
    import pandas as pd
    from img2dataset import download

    processes = options.processes or fetch_processes(len(urls))
    work.mkdir(parents=True)
    try:
        listing = work / "urls.parquet"
        pd.DataFrame({"url": urls}).to_parquet(listing)
        out = work / "out"
        guard = nullcontext() if options.allow_private_urls else public_urls.public_addresses_only()
        with _temp_files_in(work / "tmp"), guard:
            download(url_list=str(listing), input_format="parquet", url_col="url", output_folder=str(out),
                     output_format="files", processes_count=processes, thread_count=options.threads,
                     timeout=options.timeout, retries=options.retries, resize_mode="no", disable_all_reencoding=True,
                     number_sample_per_shard=max(1, -(-len(urls) // processes)), extract_exif=False,
                     compute_hash=None, enable_wandb=False)
        failures: dict[str, tuple[str, str]] = {}
        answered = set()
        images.mkdir(parents=True, exist_ok=True)
        for table in sorted(out.glob("*.parquet")):
            for url, key, status, message in pd.read_parquet(
                    table, columns=["url", "key", "status", "error_message"]).itertuples(index=False):
                answered.add(url)
                if status != "success":
                    failures[url] = (download_reason(message), message or "download failed")
                    continue
                body = (out / table.stem / f"{key}.jpg").read_bytes()
                problem = check_body(body, options.max_bytes)
                if problem:
                    failures[url] = problem
                else:
                    atomic_write_bytes(images / url_key(url), body, fsync=False)
        for url in set(urls) - answered:
            failures[url] = ("download error", "img2dataset gave no answer for this URL (its shard failed)")
        return failures
    finally:
        remove_inside(root, work, ignore_errors=True)


@contextmanager
def _temp_files_in(folder: Path):
    """img2dataset's processes import wandb, whose temp folders a terminated process never removes: while this is
    open, the processes it starts make theirs under `folder`, which goes with the run's work folder."""
    folder.mkdir()
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before


# ---------------------------------------------------------------- the webdataset


def _sample_image(body: bytes) -> tuple[str, bytes]:
    """The body under the extension clip_benchmark reads; other formats (GIF, BMP...) re-encoded as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(body)) as img:
        ext = WDS_EXTENSIONS.get(img.format or "")
        if ext:
            return ext, body
        buf = io.BytesIO()
        img.convert("RGBA" if "A" in img.getbands() else "RGB").save(buf, format="PNG")
        return "png", buf.getvalue()


def write_webdataset(final: Path, samples: Sequence[dict[str, bytes]], shards: int, dataset_type: str,
                     source: dict | None = None) -> Path:
    """`final` as a webdataset of `samples` in `shards` tars, its `dataset_type.txt` (and `source` as SOURCE_FILE)
    beside: written aside, flushed to disk, then swapped in, so a kill leaves the old folder or the new one."""
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    write_shards(tmp, samples, shards)
    (tmp / "dataset_type.txt").write_text(f"{dataset_type}\n")
    if source is not None:
        atomic_write_json(tmp / SOURCE_FILE, source)
    os.sync()
    _swap_in(tmp, final)
    return final


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace `final` by `tmp`; between the renames the old folder waits under a name `_recover` restores."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
        os.rename(tmp, final)
        remove_inside(final.parent, old, ignore_errors=True)
    else:
        os.rename(tmp, final)


def _recover(final: Path) -> None:
    """After a kill: put back an old folder a swap left aside, and drop unfinished temp folders."""
    for leftover in sorted(final.parent.glob(f".{final.name}.*")):
        if ".old-" in leftover.name and not final.exists():
            os.rename(leftover, final)
        elif leftover.is_dir():
            remove_inside(final.parent, leftover, ignore_errors=True)


def write_status(rows: list[Row], path: Path) -> None:
    """The per-row status table as CSV and Parquet (same columns), each written atomically."""
    import pandas as pd

    df = pd.DataFrame([[getattr(r, c) for c in STATUS_COLUMNS] for r in rows], columns=list(STATUS_COLUMNS))
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path.with_suffix(".parquet"), buf.getvalue())


def build_caption_dataset(name: str, table: str | Path, root: str | Path, *, url_col: str = "url",
                          caption_col: str = "caption", options: FetchOptions = FetchOptions()) -> CaptionDataset:
    """`root/wds_<name>/` from the table, fetching only what the cache lacks; the status table beside it."""
    rows = read_table(table, url_col, caption_col)
    check_rows(rows, options.context_length)
    root = Path(root)
    final = root / f"wds_{name}"
    cache = root / f".cache_{name}"
    images = cache / "images"
    root.mkdir(parents=True, exist_ok=True)
    _recover(final)
    result = CaptionDataset(name, None, root / f"wds_{name}.status.csv", rows)

    wanted = list(dict.fromkeys(r.url for r in rows if r.status == OK))
    missing = [u for u in wanted if not (images / url_key(u)).is_file()]
    failures: dict[str, tuple[str, str]] = {}
    if missing:
        start = time.perf_counter()
        failures = fetch(missing, images, options, cache / f"run-{uuid.uuid4().hex[:8]}", root)
        result.fetch_seconds = time.perf_counter() - start
        result.fetched, result.fetched_ok = len(missing), len(missing) - len(failures)

    groups: dict[str, list[str]] = {}
    for row in rows:
        if row.status != OK:
            continue
        if row.url in failures:
            row.fail(*failures[row.url])
        else:
            groups.setdefault(row.url, []).append(row.caption)
    result.failed = Counter(r.reason for r in rows if r.status != OK)

    if groups:
        samples, digest = [], hashlib.sha256()
        for url, captions in groups.items():
            ext, body = _sample_image((images / url_key(url)).read_bytes())
            txt = "\n".join(captions).encode("utf-8")
            samples.append({ext: body, "txt": txt, "url": url.encode("utf-8")})  # `url`: for similarity's rows
            digest.update(json.dumps([url, captions, hashlib.sha256(body).hexdigest()]).encode("utf-8"))
        source = {"table": str(Path(table).resolve()), "images": len(samples),
                  "captions": sum(map(len, groups.values())), "fingerprint": digest.hexdigest()}
        result.images, result.captions = source["images"], source["captions"]
        if _current_source(final) != source["fingerprint"]:
            write_webdataset(final, samples, -(-len(samples) // options.shard_size), "retrieval", source)
            result.rebuilt = True
        result.folder = final
    write_status(rows, result.status_path)
    return result


def _current_source(folder: Path) -> str | None:
    try:
        return read_json((folder / SOURCE_FILE).read_bytes(), SOURCE_FILE)["fingerprint"]
    except (OSError, InvalidResultError, KeyError, TypeError):
        return None


def remove_caption_dataset(name: str, root: str | Path) -> list[Path]:
    """Delete the webdataset, its cache and status tables; the paths removed."""
    root = Path(root)
    paths = (root / f"wds_{name}", root / f".cache_{name}", root / f"wds_{name}.status.csv",
             root / f"wds_{name}.status.parquet")
    return [path for path in paths if remove_inside(root, path)]


def remove_inside(root: Path, path: Path, *, ignore_errors: bool = False) -> bool:
    """Delete `path` (a folder and all below it, or a file) if it exists, and say whether it did. The one way this
    module deletes: `path` must lie inside `root` once both are resolved, links followed, or nothing is touched."""
    base, target = Path(os.path.realpath(root)), Path(os.path.realpath(path))
    if target == base or not target.is_relative_to(base):
        raise BenchmarkError(f"refusing to delete {path}: it is not inside the datasets root {root}")
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=ignore_errors)
    elif path.is_file():
        path.unlink()
    else:
        return False
    return True
