"""Commands: collect."""

from .app import app  # noqa: F401
