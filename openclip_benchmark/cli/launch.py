"""Commands: launch."""

from .app import app  # noqa: F401
