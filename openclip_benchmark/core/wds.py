"""clip_benchmark's webdataset split layout, written: `<folder>/test/{0..N-1}.tar` and `test/nshards.txt`.

One writer for the synthetic stand-ins and for a user's own image-caption data, so both are read by
`clip_benchmark`'s wds reader the same way. Tar members carry mtime 0, so the same samples give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Sequence


def write_shards(folder: Path, samples: Sequence[dict[str, bytes]], shards: int, split: str = "test") -> None:
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
