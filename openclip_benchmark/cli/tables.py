"""Tables printed by the commands."""

from __future__ import annotations

from typing import Any

MODELS_HELP = "Repeat or comma-separate. Globs on ARCH:TAG or ARCH ('ViT-B-*'), ARCH:TAG, a tag or family ('openai', 'ViT-L'), or local-dir:/hf-hub:/ARCH:/ckpt.pt."
DATASETS_HELP = "Repeat or comma-separate. Globs, names in any clip_benchmark spelling, or collections ('vtab', 'retrieval', 'imagenet_robustness')."


def _table(title: str, columns: list[str], rows: list[list[Any]], justify_right: tuple[int, ...] = ()):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title) or None, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if i in justify_right else "left", no_wrap=i == 0)
    for row in rows:
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    return table
