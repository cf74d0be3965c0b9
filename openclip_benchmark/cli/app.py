"""The Typer app and its error boundary: a BenchmarkError is one red line and a non-zero exit."""

from __future__ import annotations

import os
import sys
from typing import Iterable

import click
import typer
from typer.core import TyperGroup

from ..core.errors import BenchmarkError

DEFAULT_TRACKER = "results.csv"
DEFAULT_RESULTS = "results"


class _Group(TyperGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchmarkError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except (click.exceptions.Exit, typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # the last line of defence: no traceback reaches the user
            if os.environ.get("BENCHMARK_DEBUG"):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (set BENCHMARK_DEBUG=1 for the traceback)", 1)


def _fail(message: str, code: int):
    message = " ".join(str(message).split())
    click.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


app = typer.Typer(
    cls=_Group,
    help="Evaluate OpenCLIP models on CLIP benchmarks: plan, launch, sync, parse, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # plain click help: rich's help formatter alone costs ~0.4 s of start-up (markdown-it, pygments)
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def comma_list(values: str | Iterable[str] | None) -> list[str]:
    """Comma-separated values and repeated options are the same list."""
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


DATASET_MAPPING = typer.Option(
    None, "--dataset-mapping", envvar="BENCHMARK_DATASETS", show_envvar=True,
    help="Your own dataset mapping JSON (default: the shipped dataset_mapping.json).",
)


def load_catalog(dataset_mapping=None):
    """The catalog every command passes down: the user's mapping (option or $BENCHMARK_DATASETS) or the shipped one."""
    from ..catalog import load_catalog as load

    return load(dataset_mapping)


def console(stderr: bool = False):
    """A rich console; imported lazily because rich is only needed once a command runs."""
    from rich.console import Console

    return Console(stderr=stderr, file=sys.stderr if stderr else None)
