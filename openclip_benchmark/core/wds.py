"""clip_benchmark's webdataset split layout, written and read: `<folder>/test/{0..N-1}.tar` and `test/nshards.txt`.

One writer for the synthetic stand-ins and for a user's own image-caption data, so both are read by
`clip_benchmark`'s wds reader the same way. Tar members carry mtime 0, so the same samples give the same bytes.
The reading side lists where every member's bytes lie, in shard and member order, as webdataset's tar iterator
would yield them (`webdataset.tariterators.group_by_keys` groups the listing into samples), so a reader can fetch
the members of any sample directly instead of streaming every shard.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

SPLIT = "test"
_META = re.compile(r"__[^/]*__($|/)")  # what webdataset's tar iterator skips


def write_shards(folder: Path, samples: Sequence[dict[str, bytes]], shards: int, split: str = SPLIT) -> None:
    """Samples split into `shards` tar files, in order, like webdataset's ShardWriter; member `s<index>.<ext>`."""
    out = Path(folder) / split
    out.mkdir(parents=True, exist_ok=True)
    shards = max(1, min(shards, len(samples)))
    per = -(-len(samples) // shards)
    for s in range(shards):
        with tarfile.open(out / f"{s}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(s * per, min(len(samples), (s + 1) * per)):
                for ext, data in samples[i].items():
                    info = tarfile.TarInfo(f"s{i:07d}.{ext}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o644
                    tar.addfile(info, io.BytesIO(data))
    (out / "nshards.txt").write_text(f"{shards}\n")


def shard_paths(folder: Path, split: str = SPLIT) -> list[Path]:
    """The split's tar files, in order, as its `nshards.txt` counts them."""
    nshards = int((Path(folder) / split / "nshards.txt").read_text().strip())
    return [Path(folder) / split / f"{s}.tar" for s in range(nshards)]


@dataclass(frozen=True)
class Member:
    """Where one file of a sample lies."""

    tar: str
    offset: int
    size: int

    def read(self) -> bytes:
        with open(self.tar, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.size)


def members(folder: Path, split: str = SPLIT) -> Iterator[dict]:
    """Every regular file of the split as webdataset's tar iterator yields it (`fname`, `__url__`; `{}` ends a shard,
    so no sample spans two), its `data` being where its bytes lie (a Member) rather than the bytes."""
    for path in shard_paths(folder, split):
        with tarfile.open(path) as tar:
            for info in tar:
                if info.isreg() and not _META.match(info.name):
                    yield {"fname": info.name, "data": Member(str(path), info.offset_data, info.size),
                           "__url__": str(path)}
        yield {}
