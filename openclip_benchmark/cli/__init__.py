"""`benchmark`: each command module registers its commands on the one app."""

from .app import app
from . import track, evaluate, launch, collect, publish, throughput, own_data, similarity  # noqa: F401,E402  (registers commands)

__all__ = ["app"]
