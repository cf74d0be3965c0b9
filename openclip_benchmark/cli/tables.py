"""The one way the CLI prints a table: it fits the terminal it is printed in.

Figures (counts, dollars, hours, wall clock) are never cut: their column is as wide as the widest value, only a
header may wrap. Names stay whole when they fit and otherwise break at their natural joints (`:` between model and
tag, `/`, then `-` and `_`), never vanishing behind an ellipsis. Free text (errors, notes) gives way first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

FIGURE, NAME, TEXT = "figure", "name", "text"
TEXT_FLOOR, LONG_WORD = 16, 24  # free text keeps this width, and words up to this long, while names stay whole
TEXT_FLOOR_HARD, NAME_FLOOR = 10, 6  # before names break at their finer joints; before anything folds anywhere
_JOINTS = (re.compile(r"(?<=[:/ ])"), re.compile(r"(?<=[:/ _-])"))  # where a name breaks: first choice, then second


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = NAME  # figure: right-aligned, never cut; name: whole or broken at joints; text: wraps first
    style: str | None = None


class FittedTable:
    """A rich renderable: the columns are sized for the width it is rendered at (the terminal, or COLUMNS)."""

    def __init__(self, title: str | None, columns: Sequence[Column], rows: Iterable[Sequence[Any]], *,
                 caption: str | None = None, styles: Sequence[str | None] | None = None,
                 sections: Iterable[int] = (), show_header: bool = True):
        from rich.text import Text

        self.title, self.caption, self.columns, self.show_header = title, caption, list(columns), show_header
        self.rows = [[c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in row] for row in rows]
        self.styles = list(styles) if styles is not None else [None] * len(self.rows)
        self.sections = set(sections)

    def layout(self, available: int) -> tuple[list[int], int]:
        """Each column's width and the gap between columns: what the cells need, narrowed where the terminal is
        short, in this order: free text down to its long words, figure headers wrapped at their spaces, names broken
        at their first joints (`:`, `/`, space), free text down to a few letters, names broken at finer joints
        (`-`, `_`), a gap of one instead of two; only then do figure headers fold inside a word and names fold
        anywhere. A figure column is never narrower than its widest value."""
        cells = [[_lines(row[i]) for row in self.rows] for i in range(len(self.columns))]
        values = [max((_width(lines) for lines in column), default=0) for column in cells]
        headers = [_width(c.header.split("\n")) if self.show_header else 0 for c in self.columns]
        words = [max((len(w) for w in re.split(r"\s+", c.header)), default=0) if self.show_header else 0
                 for c in self.columns]
        longest_word = [max((len(w) for lines in column for line in lines for w in line.split()), default=0)
                        for column in cells]

        def joints(level: int):
            return lambda i: max(max((_longest_piece(line, level) for lines in cells[i] for line in lines), default=1),
                                 words[i], 1)

        stages = [
            ((TEXT,), lambda i: max(min(values[i], TEXT_FLOOR), words[i], min(longest_word[i], LONG_WORD))),
            ((FIGURE,), lambda i: max(values[i], words[i], 1)),
            ((NAME,), joints(0)),
            ((TEXT,), lambda i: max(min(values[i], TEXT_FLOOR_HARD), words[i])),
            ((NAME,), joints(1)),
        ]
        for gap in (2, 1):
            width = [max(v, h, 1) for v, h in zip(values, headers)]
            budget = available - gap * (len(self.columns) - 1)
            for kinds, floor in stages:
                _narrow(width, [i for i, c in enumerate(self.columns) if c.kind in kinds], floor, budget)
            if sum(width) <= budget:
                return width, gap
        _narrow(width, [i for i, c in enumerate(self.columns) if c.kind == FIGURE], lambda i: max(values[i], 1), budget)
        words_only = [i for i, c in enumerate(self.columns) if c.kind != FIGURE]
        _narrow(width, words_only, lambda i: min(values[i], NAME_FLOOR), budget)
        _narrow(width, words_only, lambda i: 1, budget)  # a terminal too narrow for the figures: they still win
        return width, gap

    def __rich_console__(self, console, options):
        from rich.table import Table
        from rich.text import Text

        widths, gap = self.layout(options.max_width)
        table = Table(caption=Text(self.caption) if self.caption else None, caption_justify="left", box=_rules(),
                      show_edge=False, pad_edge=False, collapse_padding=True, padding=(0, gap - 1),
                      show_header=self.show_header, header_style="bold")
        for column, width in zip(self.columns, widths):
            table.add_column(column.header, width=width, justify="right" if column.kind == FIGURE else "left",
                             overflow="fold", style=column.style)
        for index, (row, style) in enumerate(zip(self.rows, self.styles)):
            cells = [_break(cell, width) if column.kind == NAME else cell
                     for cell, column, width in zip(row, self.columns, widths)]
            table.add_row(*cells, style=style, end_section=index in self.sections)
        if self.title:  # above the table, not inside it: a narrow table keeps its title on one line
            yield Text(self.title, style="bold")
        yield table


def _narrow(width: list[int], columns: list[int], floor, budget: int) -> None:
    """Take one cell at a time from the widest column still above its floor, until the table fits: short names
    keep their width while a long one gives."""
    while sum(width) > budget:
        room = [i for i in columns if width[i] > floor(i)]
        if not room:
            return
        width[max(room, key=lambda i: (width[i], width[i] - floor(i)))] -= 1


def _rules():
    from rich.box import Box

    # a rule under the header and between sections, no vertical lines: the most room for the cells
    return Box("    \n    \n ── \n    \n ── \n ── \n    \n    \n")


def _lines(text) -> list[str]:
    return text.plain.split("\n")


def _width(lines: Iterable[str]) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in lines), default=0)


def _pieces(line: str, level: int) -> list[str]:
    return [p for p in _JOINTS[level].split(line) if p]


def _longest_piece(line: str, level: int) -> int:
    return max((len(p.rstrip()) for p in _pieces(line, level)), default=0)


def _break(cell, width: int):
    """A name longer than its column, broken at its joints (`:` first) so each part stays whole where it fits."""
    from rich.text import Text

    if _width(_lines(cell)) <= width or cell.spans:
        return cell
    out = []
    for line in _lines(cell):
        for level in (0, 1):
            pieces, current = [], ""
            for piece in _pieces(line, level):
                if current and len(current) + len(piece.rstrip()) > width:
                    pieces.append(current.rstrip())
                    current = ""
                current += piece
            pieces.append(current.rstrip())
            if all(len(p) <= width for p in pieces) or level == 1:
                break
        out += pieces
    return Text("\n".join(out), style=cell.style)


def print_table(out, title: str | None, columns: Sequence[Column], rows: Iterable[Sequence[Any]], **options) -> None:
    out.print(FittedTable(title, columns, rows, **options))
