"""Options shared across commands are declared once (`cli/options.py`): precision and device are enums of one list
(`core/compute.py`, also the manifest's), so the parser refuses `--precision fp8` on every command that takes it,
before any work; the shared options keep one name each across commands."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from openclip_benchmark.cli import app
from openclip_benchmark.core.compute import DEVICES, PRECISIONS
from openclip_benchmark.core.manifest import RunSettings
from openclip_benchmark.core.errors import BenchmarkError


def _commands_taking(option: str) -> list[str]:
    """Every command (`dataset add` for a group's) whose parser declares `option`, read from the app itself."""
    found = []

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        if not hasattr(command, "commands") and any(option in p.opts for p in command.params):
            found.append(" ".join(path))

    walk(get_command(app), [])
    return sorted(found)


PRECISION_COMMANDS = _commands_taking("--precision")
REQUIRED = {"run": ["-m", "x", "-d", "y"], "throughput": ["-m", "x"]}  # so the variable's turn comes
DEVICE_COMMANDS = _commands_taking("--device")


def test_the_commands_that_take_a_precision_or_device_are_found():
    assert set(PRECISION_COMMANDS) == {"launch", "run", "similarity", "throughput"}
    assert set(DEVICE_COMMANDS) == {"run", "similarity", "throughput"}


@pytest.mark.parametrize("command", PRECISION_COMMANDS)
def test_fp8_is_refused_by_the_parser(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = [([*command.split(), "--precision", "fp32,fp8"], {})] if command == "throughput" else []  # a list there
    for args, env in (([*command.split(), "--precision", "fp8"], {}), *sweep,
                      ([*command.split(), *REQUIRED.get(command, [])], {"BENCHMARK_PRECISION": "fp8"})):
        out = CliRunner().invoke(app, args, env=env)
        assert out.exit_code == 2, (args, out.output)
        assert "precision must be one of auto, fp32, amp, amp_bf16, not 'fp8'" in out.output, out.output
        assert out.output.startswith("error: ") and out.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # refused before any work


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_an_unknown_device_is_refused_by_the_parser(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, [*command.split(), "--device", "cuda:99"])
    assert out.exit_code == 2 and "device must be one of auto, cpu, cuda, cuda:0" in out.output, out.output
    assert list(tmp_path.iterdir()) == []


def test_the_parser_and_the_manifest_share_one_list():
    assert PRECISIONS == ("auto", "fp32", "amp", "amp_bf16") and {"auto", "cpu", "cuda", "cuda:1"} <= set(DEVICES)
    for precision in PRECISIONS:
        assert RunSettings(precision=precision).precision == precision
    with pytest.raises(BenchmarkError, match="precision must be one of auto, fp32, amp, amp_bf16"):
        RunSettings(precision="fp8")


@pytest.mark.parametrize("option", ["--store", "--endpoint-url", "--dataset-mapping", "--tracker", "--results",
                                    "--precision", "--batch-size", "--cache-dir", "--dataset-root"])
def test_a_shared_option_reads_one_variable_everywhere(option):
    """Declared once: wherever a shared option appears on a user's command, it reads the same environment variable
    (hidden commands are what jobs run, with their own variables)."""
    variables = set()

    def walk(command):
        for sub in getattr(command, "commands", {}).values():
            if not sub.hidden:
                walk(sub)
        for param in getattr(command, "params", ()):
            if option in param.opts and param.envvar:
                variables.add(str(param.envvar))

    walk(get_command(app))
    assert len(variables) == 1, variables
