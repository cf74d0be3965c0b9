"""A working folder is a project: `benchmark.toml`, found upwards from the working folder, holds the defaults of every
command; `dataset add` registers its mapping there, so the next command in that folder knows the set with no flag.
Precedence, for each setting: option > environment > project file > shipped default; never a credential."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openclip_benchmark.cli import app
from openclip_benchmark.core.project import (PROJECT_FILE, SETTINGS, ProjectError, load_project, project_file_for,
                                             read_project, remember)
from fixtures import sample_image
from loopback_images import ImageHost
from openclip_benchmark.synthetic import make_tiny_model

IMAGES = 10  # recall@10 needs ten images
VARIABLES = [name for setting in SETTINGS.values() for name in setting.env]


@pytest.fixture(autouse=True)
def no_setting_in_the_environment(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def bench(*args, code: int = 0, env: dict | None = None) -> str:
    out = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})})
    assert out.exit_code == code, out.output
    return out.output


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """An empty folder where `dataset add myset` ran with no mapping flag and no variable, and a tiny model."""
    folder = tmp_path_factory.mktemp("project")
    model = make_tiny_model(tmp_path_factory.mktemp("models"), "tiny")
    with pytest.MonkeyPatch.context() as mp, ImageHost({f"{i}.png": sample_image(i) for i in range(IMAGES)}) as host:
        for name in VARIABLES:
            mp.delenv(name, raising=False)
        mp.chdir(folder)
        with open("data.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("url", "caption"), *((host.image_url(f"{i}.png"), f"photo {i}") for i in range(IMAGES))])
        added = bench("dataset", "add", "myset", "--csv", "data.csv", "--processes", "1", "--threads", "4",
                      "--retries", "0", "--shard-size", "5", "--allow-private-urls")
    return dict(folder=folder, model=model, added=added)


def test_a_set_added_here_is_known_to_every_later_command_here(project, monkeypatch):
    folder, model = project["folder"], project["model"]
    assert (folder / PROJECT_FILE).read_text().splitlines()[-1] == 'dataset_mapping = "datasets/dataset_mapping.json"'
    assert f"{folder / PROJECT_FILE}: dataset_mapping = " in project["added"]
    monkeypatch.chdir(folder)
    scored = bench("similarity", "-m", model, "-d", "myset", "--out", "sim")
    assert "similarity: 10 images" in scored
    assert "new pairs" in bench("init", "-m", model, "-d", "myset")
    ran = bench("run", "-m", model, "-d", "myset")
    assert "1 succeeded" in ran
    assert "report: file://" in bench("report")
    assert (folder / "report" / "index.html").is_file() and (folder / "leaderboard.csv").is_file()
    board = (folder / "leaderboard.csv").read_text()
    assert "myset" in board.splitlines()[0]
    # found upwards, like pyproject.toml: a subfolder is the same project
    (folder / "notes").mkdir(exist_ok=True)
    monkeypatch.chdir(folder / "notes")
    assert [d["name"] for d in json.loads(bench("datasets", "myset", "--json"))] == ["myset"]


def _mapping_naming(project, name: str, path: Path) -> Path:
    """A copy of the project's mapping whose own set is called `name`: which mapping a command read shows."""
    data = json.loads((project["folder"] / "datasets" / "dataset_mapping.json").read_text())
    data["datasets"][name] = data["datasets"].pop("myset")
    path.write_text(json.dumps(data))
    return path


def _precisions(store: Path) -> list[str]:
    """The precision of every result in a local store (manifests, bundles and samples left aside)."""
    return [json.loads(p.read_text())["run"]["precision"] for p in sorted(store.rglob("*.json"))
            if not any(part.startswith("_") for part in p.relative_to(store).parts)]


def test_option_beats_environment_beats_project_file_beats_shipped_default(project, tmp_path, monkeypatch):
    """For the store, the mapping and the precision, each level overrides the next; the results say which won."""
    monkeypatch.chdir(tmp_path)
    model = project["model"]
    levels = ("option", "env", "file")
    mapping = {level: _mapping_naming(project, f"set_{level}", tmp_path / f"{level}.json") for level in levels}
    store = {level: tmp_path / f"store_{level}" for level in levels}
    (tmp_path / PROJECT_FILE).write_text(
        'store = "store_file"\nprecision = "amp"\ndataset_mapping = "file.json"\n')  # relative: to the file's folder
    env = {"BENCHMARK_STORE": str(store["env"]), "BENCHMARK_PRECISION": "amp_bf16",
           "BENCHMARK_DATASETS": str(mapping["env"])}

    bench("run", "-m", model, "-d", "set_option", "--store", store["option"], "--precision", "fp32",
          "--dataset-mapping", mapping["option"], "--no-progress", env=env)
    assert _precisions(store["option"]) == ["fp32"] and not store["env"].exists() and not store["file"].exists()

    bench("run", "-m", model, "-d", "set_env", "--no-progress", env=env)
    assert _precisions(store["env"]) == ["amp_bf16"] and not store["file"].exists()

    bench("run", "-m", model, "-d", "set_file", "--no-progress")
    assert _precisions(store["file"]) == ["amp"] and not (tmp_path / "results").exists()

    (tmp_path / PROJECT_FILE).unlink()  # the shipped defaults: the shipped mapping, ./results, auto (fp32 on a CPU)
    assert "unknown dataset" in bench("datasets", "set_file", code=2)
    bench("run", "-m", model, "-d", "myset", "--dataset-root", project["folder"] / "datasets", "--no-progress")
    assert _precisions(tmp_path / "results") == ["fp32"]


def test_config_says_where_each_setting_comes_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / PROJECT_FILE).write_text('# mine\ngpus = ["L4", "A10G"]\nbudget = 25\nresults = "out/results"\n')
    shown = json.loads(bench("config", "--json", env={"BENCHMARK_BUDGET": "40"}))
    assert shown["project"] == str(tmp_path / PROJECT_FILE)
    settings = shown["settings"]
    assert settings["gpus"] == {"value": ["L4", "A10G"], "source": "project", "where": f"{tmp_path / PROJECT_FILE}:2",
                                "environment": ["BENCHMARK_GPUS"]}
    assert settings["budget"]["value"] == "40" and settings["budget"]["where"] == "$BENCHMARK_BUDGET"
    assert settings["results"]["value"] == str(tmp_path / "out" / "results")  # relative to the file's folder
    assert settings["precision"] == {"value": "auto", "source": "shipped", "where": "shipped default",
                                     "environment": ["BENCHMARK_PRECISION"]}
    table = bench("config", env={"COLUMNS": "80"})
    assert f"{PROJECT_FILE}:2" in table and "$BENCHMARK_BUDGET" in table and "L4,A10G" in table
    assert max(len(line) for line in table.splitlines()) <= 80


@pytest.mark.parametrize("text, message", [
    ('store = "s3://b/p"\naws_secret_access_key = "abc"\n', ":2: 'aws_secret_access_key' looks like a credential"),
    ('hf_token = "hf_abc"\n', ":1: 'hf_token' looks like a credential"),
    ('api_key = "k"\n', ":1: 'api_key' looks like a credential"),
    ('password = "p"\n', ":1: 'password' looks like a credential"),
    ('endpoint_url = "https://id:secret@example.org"\n', ":1: endpoint_url has a user or password in its URL"),
    ('stor = "x"\n', ":1: unknown setting 'stor'; did you mean store?"),
    ('precision = "fp8"\n', ":1: precision must be one of auto, fp32, amp, amp_bf16, not 'fp8'"),
    ('batch_size = 0\n', ":1: batch_size must be a whole number >= 1"),
    ('budget = nan\n', ":1: budget must be a number >= 0, not nan"),
    ('gpus = "L4"\nspot = "yes"\n', ":2: spot must be true or false"),
    ('store = "x"\n\ntracker = [\n', ":3: not valid TOML"),
    ('[run]\nprecision = "fp32"\n', ":1: unknown setting 'run'"),
])
def test_a_bad_project_file_is_one_line_naming_file_and_line(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / PROJECT_FILE).write_text(text)
    out = bench("init", "-m", "ViT-B-32:openai", "-d", "cifar10", code=2)
    assert out.startswith(f"error: {tmp_path / PROJECT_FILE}{message}") and out.count("\n") == 1, out
    assert not (tmp_path / "results.csv").exists()
    assert "--help" not in out and bench("--help")  # `--help` reads no project file


def test_remember_keeps_the_file_and_writes_paths_relative_to_it(tmp_path):
    (tmp_path / PROJECT_FILE).write_text('# my project\nstore = "s3://bucket/runs"  # shared\n')
    sub = tmp_path / "sub"
    sub.mkdir()
    path = project_file_for(sub / "datasets", start=sub)  # found upwards, like pyproject.toml
    assert path == tmp_path / PROJECT_FILE
    assert remember("dataset_mapping", sub / "data" / "m.json", path)
    assert path.read_text() == '# my project\nstore = "s3://bucket/runs"  # shared\ndataset_mapping = "sub/data/m.json"\n'
    assert not remember("dataset_mapping", sub / "data" / "m.json", path)
    remember("dataset_mapping", "/elsewhere/m.json", path)
    assert read_project(path).values == {"store": "s3://bucket/runs", "dataset_mapping": "/elsewhere/m.json"}
    assert load_project(sub).lines == {"store": 2, "dataset_mapping": 3}
    with pytest.raises(ProjectError, match="user or password"):
        remember("dataset_mapping", "https://user:pw@example.org/m.json", path)
    assert read_project(path).values["dataset_mapping"] == "/elsewhere/m.json"  # a refused write changes nothing


def test_no_folder_becomes_a_project_by_accident(tmp_path):
    """Without a project above, `dataset add` makes one in the working folder only for a datasets root inside it."""
    work = tmp_path / "work"
    work.mkdir()
    assert project_file_for(work / "datasets", start=work) == work / PROJECT_FILE
    assert project_file_for(tmp_path / "elsewhere", start=work) is None
    assert not (work / PROJECT_FILE).exists()
