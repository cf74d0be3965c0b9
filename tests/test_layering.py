"""The package's layering, read from its source with ast: each test lists every violation at once.

Why: `benchmark --help` stays fast and the core stays testable only while heavy libraries and higher layers are kept
out of the modules below them; an import added in the wrong place is caught here, not in a slow CLI later.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import openclip_benchmark

PACKAGE = "openclip_benchmark"
ROOT = Path(openclip_benchmark.__file__).parent
LAYERS = ("core tasks catalog synthetic loopback_hub loopback_images planning storage datasets tracker evaluate similarity worker "
          "throughput backends collect pipeline demo cli").split()
PURE = ("core/", "catalog/__init__.py", "planning/", "tasks/__init__.py", "tracker.py", "storage/layout.py",
        "throughput/settings.py", "throughput/records.py", "similarity/stats.py")
NETWORK_OR_HEAVY = ("torch", "sky", "boto3", "botocore", "open_clip", "clip_benchmark", "requests", "urllib.request",
                    "http.client", "huggingface_hub")
HEAVY = ("torch", "open_clip", "sky", "boto3", "clip_benchmark", "huggingface_hub", "matplotlib", "pandas", "vl_convert", "scipy")

# (importer, imported): why it stays. Layer order (c) and function-level imports of light modules (d).
ALLOWED = {
    ("storage.sync", "tracker"): "sync records what it fetched in the tracker; tracker itself imports storage.layout",
    ("core.manifest", "catalog"): "a manifest's dataset specs are validated as a mapping file's (one reader)",
    ("tasks", "tasks.multilabel"): "the built-in tasks import the registry, so it loads them on first use (a cycle)",
    ("tasks", "tasks.zeroshot_classification"): "as above",
    ("tasks", "tasks.zeroshot_retrieval"): "as above",
    ("tasks", "tasks.linear_probe"): "as above",
}


@dataclass(frozen=True)
class Import:
    importer: str  # module, without the package prefix
    imported: str  # absolute module name (a package's submodule when `from pkg import sub`)
    lineno: int
    top: bool  # at module level (not inside a function)

    @property
    def where(self) -> str:
        return f"{self.importer}:{self.lineno} imports {self.imported}{'' if self.top else ' (in a function)'}"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    typing_only = {id(n) for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
                   for n in node.body}  # annotations only: never imported at run time
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = [PACKAGE, *filter(None, package.split("."))]
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        if id(node) in typing_only:
            continue
        found += [Import(module, name, node.lineno, id(node) in top) for name in dict.fromkeys(names)]
    return found


def _is_module(name: str) -> bool:
    """A stdlib `from urllib import request` or a package's submodule; both count as the submodule."""
    if name.startswith(PACKAGE + "."):
        return name.removeprefix(PACKAGE + ".") in MODULES
    return name in NETWORK_OR_HEAVY


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _internal(name: str) -> str | None:
    """`openclip_benchmark.storage.layout` -> `storage.layout`; None for other packages and the bare package."""
    return name.removeprefix(PACKAGE + ".") if name.startswith(PACKAGE + ".") else None


def _matches(name: str, roots) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def _heavy(module: str, seen: frozenset = frozenset()) -> bool:
    """Whether importing `module` imports a heavy library at some module top, following the package's own imports."""
    for imp in IMPORTS:
        if imp.importer != module or not imp.top:
            continue
        inner = _internal(imp.imported)
        if _matches(imp.imported, HEAVY) or (inner and inner not in seen and _heavy(inner, seen | {module})):
            return True
    return False


def test_the_pure_core_imports_nothing_heavy_or_networked():
    pure = [m for m, p in MODULES.items() if p.relative_to(ROOT).as_posix().startswith(PURE)]
    assert {"core.jsonio", "catalog", "planning.plan", "tasks", "tracker", "storage.layout"} <= set(pure)
    bad = [imp.where for imp in IMPORTS if imp.importer in pure and _matches(imp.imported, NETWORK_OR_HEAVY)]
    assert not bad, "\n".join(bad)


def test_only_the_cli_imports_the_cli():
    bad = [imp.where for imp in IMPORTS if not _matches(imp.importer, ["cli"])
           and _matches(_internal(imp.imported) or "", ["cli"])]
    assert not bad, "\n".join(bad)


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_every_module_is_in_a_layer():
    assert sorted({m.split(".")[0] for m in MODULES if m} - set(LAYERS)) == []


def test_a_module_imports_its_own_layer_or_lower_ones():
    bad = [imp.where for imp in IMPORTS if imp.importer and (inner := _internal(imp.imported))
           and _layer(inner) > _layer(imp.importer) and (imp.importer, inner) not in ALLOWED]
    assert not bad, "\n".join(bad)


def test_light_package_modules_are_imported_at_module_top():
    """A function-level import is for a heavy module (keeps `--help` fast) or a cycle; anything else hides a layer.
    The CLI is the exception: a command's modules load in the command, so `benchmark --help` imports only Typer."""
    bad = [imp.where for imp in IMPORTS if not imp.top and (inner := _internal(imp.imported))
           and not _heavy(inner) and not _matches(imp.importer, ["cli"]) and (imp.importer, inner) not in ALLOWED]
    assert not bad, "\n".join(bad)


def test_allowed_entries_are_all_still_needed():
    used = {(imp.importer, _internal(imp.imported) or imp.imported) for imp in IMPORTS}
    assert sorted(set(ALLOWED) - used) == []
