"""`benchmark`: each command module registers its commands on the one app."""

from .app import app
from . import (  # noqa: F401,E402  (registers commands, in the order `--help` lists them)
    init, status, models, datasets, plan, launch, cancel, prices, interactive, pool, run, worker, sync, parse, report,
    compare, publish, throughput, demo, dataset, similarity, config,
)

__all__ = ["app"]
