"""The JSON Schema of each record this tool writes, generated from its typed model and shipped in this folder:
result, failure, manifest, samples and plan. After a model changes, `python -m openclip_benchmark.schemas` writes
them again; a test checks the shipped files equal what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.jsonio import atomic_write_text
from ..core.manifest import Manifest
from ..core.records import Failure, Result
from ..core.samples import Samples
from ..planning.plan_file import PlanFile

FOLDER = Path(__file__).parent
MODELS = {"result": Result, "failure": Failure, "manifest": Manifest, "samples": Samples, "plan": PlanFile}
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def generate() -> dict[str, str]:
    """File name -> the text of its JSON Schema."""
    return {f"{name}.json": json.dumps({"$schema": DIALECT, **model.model_json_schema()}, indent=2) + "\n"
            for name, model in MODELS.items()}


def write(folder: Path = FOLDER) -> list[Path]:
    paths = []
    for name, text in generate().items():
        atomic_write_text(folder / name, text)
        paths.append(folder / name)
    return paths
