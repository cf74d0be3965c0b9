"""Commands: evaluate."""

from .app import app  # noqa: F401
