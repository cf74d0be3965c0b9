"""User-facing errors: the CLI prints their message on one line and exits with their code."""


class BenchmarkError(Exception):
    """A problem the user can fix; never shown with a traceback."""

    exit_code = 2


class UnknownNameError(BenchmarkError):
    """A model, dataset or collection name that the catalog does not know."""

    def __init__(self, kind: str, name: str, known):
        import difflib

        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")
        self.name = name


class InvalidResultError(BenchmarkError):
    """A record or document (result, failure, manifest, samples, settings; any JSON from outside) that does not
    follow its schema, or is too large or too deeply nested to read."""
