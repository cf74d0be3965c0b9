"""SkyPilot pools of warm workers (`configs/pool.yaml`): setup and downloads paid once per worker, then `launch
--pool NAME` sends shards to them."""

from __future__ import annotations

from pathlib import Path

from .skypilot_task import CONFIGS, build_from_file, load_yaml

POOL = CONFIGS / "pool.yaml"


def pool_up(name: str, config_path: str | Path = POOL, workers: int | None = None):
    import sky
    from sky.serve.serve_utils import UpdateMode

    return sky.get(sky.jobs.pool_apply(build_from_file(config_path), name, mode=UpdateMode.ROLLING, workers=workers))


def pool_down(name: str):
    import sky

    return sky.get(sky.jobs.pool_down(name))


def pool_gpu(config_path: str | Path = POOL) -> str | None:
    """The pool's GPU: shards sent to a pool are planned for it."""
    acc = (load_yaml(config_path).get("resources") or {}).get("accelerators")
    if isinstance(acc, dict):
        return next(iter(acc), None)
    if isinstance(acc, str):
        return acc.split(":")[0]
    return None
