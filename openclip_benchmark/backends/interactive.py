"""The interactive cluster (`configs/interactive.yaml`): one machine to run pairs on by hand, stopped when idle."""

from __future__ import annotations

from pathlib import Path

from .skypilot_task import CONFIGS, build_from_file

INTERACTIVE = CONFIGS / "interactive.yaml"


def interactive_up(cluster: str, idle_minutes: int, config_path: str | Path = INTERACTIVE):
    import sky

    return sky.get(sky.launch(build_from_file(config_path), cluster_name=cluster,
                              idle_minutes_to_autostop=idle_minutes))


def interactive_down(cluster: str):
    import sky

    return sky.get(sky.down(cluster))
