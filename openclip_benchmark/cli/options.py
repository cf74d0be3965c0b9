"""Options shared across commands, declared once with `Annotated` and reused, so a name means one thing everywhere.

A project setting's option reads its environment variable and, through the app's default map, `benchmark.toml`
(`core.project`): option > environment > project file > shipped default. Each command still states its own default
in its signature, where its meaning differs (a store for `run`, none for `sync`). Precision and device are enums, so
the parser refuses `--precision fp8` on every command before any work starts.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..backends import backend_names
from ..core.compute import PRECISIONS, Device, Precision
from ..core.project import SETTINGS
from .app import comma_list

MODELS_HELP = ("Repeat or comma-separate. Globs on ARCH:TAG or ARCH ('ViT-B-*'), ARCH:TAG, a tag or family ('openai', "
               "'ViT-L'), or local-dir:PATH, hf-hub:ORG/REPO, ARCH:/path/ckpt.pt.")
DATASETS_HELP = ("Repeat or comma-separate. Globs, names in any clip_benchmark spelling, or collections ('vtab', "
                 "'retrieval', 'imagenet_robustness').")


def _setting(key: str, *names: str, **options) -> typer.models.OptionInfo:
    """The option of a project setting: its environment variables and help come from `core.project.SETTINGS`."""
    setting = SETTINGS[key]
    options.setdefault("help", setting.help)
    envvar = setting.env[0] if len(setting.env) == 1 else list(setting.env)
    return typer.Option(*names, envvar=envvar, show_envvar=True, **options)


def _one_of(kind: type[Enum], what: str):
    """The parser of an enum option: a bad value is a usage error naming every choice."""
    def parse(text: str) -> Enum:
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{what} must be one of {', '.join(k.value for k in kind)}, not {text!r}") from None
    return parse


def _precisions(text: str) -> str:
    """A comma list of precisions (`throughput` sweeps them), each checked against the one list."""
    chosen = comma_list(text)
    return ",".join(dict.fromkeys(_one_of(Precision, "precision")(p).value for p in chosen or [text]))


def _choices(kind: type[Enum]) -> str:
    return "[" + "|".join(k.value for k in kind) + "]"


# the --backend choices are the registry's names: a new backend needs no CLI change
BackendName = Enum("BackendName", {name: name for name in backend_names()}, type=str)

# ---------------------------------------------------------------- project settings (benchmark.toml)
DEFAULT_STORE, DEFAULT_TRACKER, DEFAULT_RESULTS = (SETTINGS[k].default for k in ("store", "tracker", "results"))
DEFAULT_BATCH_SIZE, DEFAULT_CACHE_DIR = SETTINGS["batch_size"].default, SETTINGS["cache_dir"].default
Store = Annotated[str, _setting("store", "--store")]
EndpointUrl = Annotated[Optional[str], _setting("endpoint_url", "--endpoint-url")]
DatasetMapping = Annotated[Optional[Path], _setting("dataset_mapping", "--dataset-mapping")]
RegisterMapping = Annotated[Optional[Path], _setting(
    "dataset_mapping", "--dataset-mapping",
    help="The mapping to register in (default: ROOT/dataset_mapping.json, first made as a copy of the shipped one).")]
Tracker = Annotated[Path, _setting("tracker", "--tracker", "-t")]
Results = Annotated[Path, _setting("results", "--results")]
Gpus = Annotated[Optional[str], _setting("gpus", "--gpus")]
Clouds = Annotated[Optional[str], _setting("clouds", "--clouds")]
Spot = Annotated[bool, _setting("spot", "--spot/--on-demand")]
Budget = Annotated[Optional[float], _setting(
    "budget", "--budget", min=0,
    help="Dollars to spend at most, in total (shards that do not fit are skipped, see above).")]
PrecisionOption = Annotated[Precision, _setting(
    "precision", "--precision", parser=_one_of(Precision, "precision"), metavar=_choices(Precision))]
PrecisionList = Annotated[str, _setting(
    "precision", "--precision", parser=_precisions, metavar="LIST",
    help=f"Comma list of {', '.join(PRECISIONS)}. amp is autocast: fp16 on a GPU, bf16 on a CPU; auto is amp on a "
    "GPU, fp32 on a CPU.")]
DeviceOption = Annotated[Device, _setting(
    "device", "--device", parser=_one_of(Device, "device"), metavar=_choices(Device))]
BatchSize = Annotated[int, _setting("batch_size", "--batch-size", min=1)]
CacheDir = Annotated[str, _setting("cache_dir", "--cache-dir")]
DatasetRoot = Annotated[Optional[str], _setting("dataset_root", "--dataset-root")]

# ---------------------------------------------------------------- selections
Models = Annotated[Optional[list[str]], typer.Option("--models", "-m", help=MODELS_HELP)]
Datasets = Annotated[Optional[list[str]], typer.Option("--datasets", "-d", help=DATASETS_HELP)]
Languages = Annotated[Optional[list[str]], typer.Option(
    "--languages", "-l", help="Languages, e.g. en,jp (default: en); each dataset gets the ones it has.")]
Tasks = Annotated[Optional[list[str]], typer.Option(
    "--tasks", help="Repeat or comma-separate: the tasks each dataset gets among those it serves, e.g. "
    "zeroshot_classification,linear_probe,zeroshot_classification_cupl (default: each dataset's first).")]

# ---------------------------------------------------------------- evaluation
NumWorkers = Annotated[int, typer.Option("--num-workers", min=0, help="Data loader processes decoding images.")]
ImageSize = Annotated[Optional[str], typer.Option(
    "--image-size", help="Image size override; a comma list sweeps: 160,192,224.")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]

# ---------------------------------------------------------------- planning (plan, launch, prices)
Target = Annotated[Optional[float], typer.Option(
    "--target-minutes", min=5,
    help="Target duration of one job (default: 45 on spot, where it bounds what a preemption loses; 90 on demand).")]
RetryFailed = Annotated[bool, typer.Option("--retry-failed", help="Plan failed pairs again too.")]
CalibrateFrom = Annotated[Optional[Path], typer.Option(
    "--calibrate-from",
    help="Results folder to recalibrate from (default: the results folder if present); `benchmark throughput` runs "
    "there (and in ./throughput) set measured GPU speeds.")]
Prices = Annotated[Optional[Path], typer.Option("--prices", help="Price table JSON (default: the shipped snapshot).")]
MaxParallel = Annotated[Optional[int], typer.Option(
    "--max-parallel", min=1,
    help="Jobs running at once, for the wall-clock estimate (default: 2000, SkyPilot's cap on running managed jobs).")]
Shards = Annotated[bool, typer.Option("--shards", help="Print every shard, not only the summary.")]
Backend = Annotated[BackendName, typer.Option("--backend", help="Where jobs run: a registered backend.")]

# ---------------------------------------------------------------- your own data (dataset, similarity)
DEFAULT_OWN_ROOT = "datasets"
OwnRoot = Annotated[str, typer.Option("--root", help="Folder of your datasets.")]
UrlColumn = Annotated[str, typer.Option("--url-col", help="Column of image URLs.")]
CaptionColumn = Annotated[str, typer.Option("--caption-col", help="Column of captions (rows of one URL share its image).")]
AllowPrivateUrls = Annotated[bool, typer.Option(
    "--allow-private-urls",
    help="Also fetch URLs on loopback, link-local (the cloud's metadata service) and private addresses.")]

# ---------------------------------------------------------------- output and prompts
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")]
