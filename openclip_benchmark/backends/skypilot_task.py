"""SkyPilot task files: the shipped configs, read, validated with SkyPilot's own schema, with credentials only as
SkyPilot `secrets` (null in every file, filled from this process's environment when the task is built). Shared by
the SkyPilot backend, the pools, the interactive cluster and the price refresh.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import BenchmarkError
from ..core.jsonio import atomic_write_text

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def configs_dir() -> Path:
    """The checkout's top-level configs/ when running from one, else the copy packaged in the wheel."""
    checkout = PACKAGE_DIR.parent / "configs"
    return checkout if (checkout / "managed_job_template.yaml").is_file() else PACKAGE_DIR / "configs"


CONFIGS = configs_dir()
SECRET_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "R2_ENDPOINT_URL", "HF_TOKEN")


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BenchmarkError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path} is not a YAML mapping")
    return data


def secrets_from_env(names: Iterable[str] = SECRET_NAMES, required: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(name, value) of the credentials set here; the values go to SkyPilot only, never into a file."""
    missing = [n for n in required if not os.environ.get(n)]
    if missing:
        raise BenchmarkError(f"set {', '.join(missing)} in the environment: jobs need them to write results")
    return [(n, os.environ[n]) for n in names if os.environ.get(n)]


def build_task(config: dict[str, Any], envs: dict[str, str], secrets: list[tuple[str, str]]):
    """Validate with SkyPilot's schema and build the Task; any defect is a one-line error before anything is sent."""
    import sky

    try:
        return sky.Task.from_yaml_config(
            copy.deepcopy(config), env_overrides=sorted(envs.items()), secrets_overrides=list(secrets)
        )
    except Exception as exc:  # SkyPilot raises ValueError / jsonschema errors with multi-line text
        msg = " ".join(str(exc).split())
        for _, value in secrets:  # never echo a credential, even inside an error message
            msg = msg.replace(value, "***")
        raise BenchmarkError(f"invalid SkyPilot task {config.get('name')}: {msg[:400]}") from None


def build_from_file(path: str | Path):
    """A task from one of the configs (or the user's copy), with the credentials set here."""
    return build_task(load_yaml(path), {}, secrets_from_env())


def write_rendered(config: dict[str, Any], folder: Path) -> Path:
    """Keep the rendered YAML for inspection: envs filled in, secrets null as rendered."""
    import yaml

    path = Path(folder) / f"{config['name']}.yaml"
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path


def one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
