"""The Typer app and its error boundary: a BenchmarkError is one red line and a non-zero exit. Each command's
defaults come from the project's `benchmark.toml` below its options and environment (`project_defaults`)."""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import Iterable

import click
import typer
from typer import _click as typer_click
from typer.core import TyperGroup

from ..core.errors import BenchmarkError

# typer vendors its own click (typer._click) and raises those classes; click's own stay for code that uses click
_USAGE_ERRORS = (typer_click.exceptions.UsageError, click.exceptions.UsageError)
_NO_ARGS = typer_click.exceptions.NoArgsIsHelpError
_ABORTS = (typer.Abort, click.exceptions.Abort)
_EXITS = (typer.Exit, click.exceptions.Exit, typer_click.exceptions.ClickException, click.exceptions.ClickException)


# a path the user named that cannot serve as given: bad input, not a fault of the tool
_BAD_PATH = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS,
             errno.ENAMETOOLONG, errno.ELOOP}


class _Group(TyperGroup):
    """Every command runs inside this boundary: bad input (a usage error, a BenchmarkError of code 2, a path that
    cannot serve as given, a file that is not UTF-8 text) is one `error:` line naming it and exit 2, anything
    unexpected one line and exit 1, never a traceback."""

    def parse_args(self, ctx, args):
        # the group's own options and arguments (`benchmark --bogus`) are parsed before invoke
        try:
            return super().parse_args(ctx, args)
        except _USAGE_ERRORS as exc:
            _usage(exc)

    def invoke(self, ctx: click.Context):
        try:
            ctx.default_map = project_defaults(self)
            return super().invoke(ctx)
        except BenchmarkError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except _USAGE_ERRORS as exc:
            _usage(exc)
        except _ABORTS:
            _fail("aborted: nothing confirmed (pass --yes to skip the question)", 2)
        except _EXITS:
            raise
        except OSError as exc:
            if exc.filename is None:  # a network error, say: not a path the user named
                _unexpected(exc)
            path = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            _fail(f"{path}: {exc.strerror or exc}", 2 if exc.errno in _BAD_PATH else 1)
        except UnicodeDecodeError as exc:
            where = _file_being_read(exc)
            if where is None:
                _unexpected(exc)
            _fail(f"{where} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save it as UTF-8", 2)
        except Exception as exc:  # the last line of defence: no traceback reaches the user
            _unexpected(exc)


def _unexpected(exc: Exception):
    if os.environ.get("BENCHMARK_DEBUG"):
        raise exc
    _fail(f"unexpected {type(exc).__name__}: {exc} (set BENCHMARK_DEBUG=1 for the traceback)", 1)


def _file_being_read(exc: UnicodeDecodeError) -> str | None:
    """The text file whose bytes failed to decode: the innermost frame of the traceback that holds one open."""
    found, tb = None, exc.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, io.TextIOWrapper) and isinstance(value.name, str):
                found = value.name
        tb = tb.tb_next
    return found


def _usage(exc):
    """A usage error: click's message without its `Try --help` block; `benchmark` alone still prints the help."""
    if isinstance(exc, _NO_ARGS):
        raise exc
    _fail(exc.format_message().replace("Value error, ", ""), 2)  # Typer's coercion prefix says nothing


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


def comma_choice(text: str | None) -> tuple[str, ...] | None:
    """A comma list as a restriction: each name once, None (no restriction) when empty."""
    return tuple(dict.fromkeys(comma_list(text))) or None


def project_defaults(group) -> dict:
    """click's default map from the project's `benchmark.toml`: each option declared for a project setting (it
    reads that setting's environment variable) defaults to the file's value, below the option and the variable.
    Read when a command runs, so `benchmark --help` reads no file."""
    from ..core.project import SETTINGS, load_project

    project = load_project()
    if project is None:
        return {}
    by_env = {setting.env: key for key, setting in SETTINGS.items()}

    def defaults(command) -> dict:
        out = {}
        for name, sub in getattr(command, "commands", {}).items():
            found = defaults(sub) if hasattr(sub, "commands") else {
                param.name: _as_param(project.values[key], param) for param in sub.params
                if (key := by_env.get(tuple(_names(param.envvar)))) in project.values}
            if found:
                out[name] = found
        return out

    return defaults(group)


def _names(envvar) -> list[str]:
    return [envvar] if isinstance(envvar, str) else list(envvar or ())


def _as_param(value, param):
    """A list setting is a comma list for a text option, a list for a repeatable one."""
    if isinstance(value, tuple):
        return list(value) if param.multiple else ",".join(value)
    return value


def load_catalog(dataset_mapping=None):
    """The catalog every command passes down: the user's mapping (option, $BENCHMARK_DATASETS or benchmark.toml) or
    the shipped one."""
    from ..catalog import load_catalog as load

    return load(dataset_mapping)


def console(stderr: bool = False):
    """A rich console; imported lazily because rich is only needed once a command runs."""
    from rich.console import Console

    return Console(stderr=stderr, file=sys.stderr if stderr else None)
