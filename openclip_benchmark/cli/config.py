"""Command: `benchmark config`, the effective settings of this folder and where each comes from."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..core.jsonio import dumps_strict
from ..core.project import PROJECT_FILE, effective_settings, load_project
from .app import app, console
from .options import Json
from .tables import TEXT, Column, print_table


@app.command()
def config(as_json: Json = False):
    """Print the settings every command starts from (store, endpoint, dataset mapping, tracker, results, GPUs,
    clouds, spot, budget, precision, device, batch size, cache, dataset root), each with where it comes from:
    the environment, the project's benchmark.toml (found upwards from here) or the shipped default. An option
    on a command still wins over all three."""
    project = load_project()
    settings = effective_settings(project)
    if as_json:
        typer.echo(dumps_strict({
            "project": str(project.path) if project else None,
            "settings": {e.setting.key: {"value": _plain(e.value), "source": e.source, "where": e.where,
                                         "environment": list(e.setting.env)} for e in settings},
        }))
        return
    out = console()
    if project:
        out.print(f"project: {project.path}", highlight=False, markup=False)
    else:
        out.print(f"project: no {PROJECT_FILE} in {Path.cwd()} or above; `benchmark dataset add` makes one here, "
                  "or write one by hand", highlight=False, markup=False)
    print_table(out, "effective settings (an option on a command wins over these)",
                [Column("setting, variable"), Column("value", TEXT), Column("from")],
                [["\n".join([e.setting.key, *(f"${v}" for v in e.setting.env)]), _shown(e),
                  e.where.replace(str(project.path), _near(project.path)) if project else e.where]
                 for e in settings], sections=range(len(settings) - 1))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _shown(effective) -> str:
    value = effective.value
    if value is None:
        return f"({effective.setting.shipped})"
    return ",".join(value) if isinstance(value, tuple) else str(value).lower() if isinstance(value, bool) else str(value)


def _near(path: Path) -> str:
    """The project file relative to this folder when it is here or above: the table stays narrow."""
    return os.path.relpath(path) if Path.cwd().resolve().is_relative_to(path.parent) else str(path)
