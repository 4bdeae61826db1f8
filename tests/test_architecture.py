"""The package's shape: layers imported only downwards, no import cycles, small modules and functions.

The import graph is read from the source with ``ast`` (every ``import`` of a powdersolve module, at
module level or inside a function), so an in-function import cannot hide an upward edge or a cycle.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import powdersolve
from powdersolve.predict import PredictConfig, pipeline
from powdersolve.solve import pipeline as solve_pipeline

PACKAGE = Path(__file__).resolve().parents[1] / "powdersolve"

#: Layers, lowest first: a module may import from its own layer and the ones before it, never after.
#: A module belongs to the layer of the longest entry that names it or a package above it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("errors", "fileio", "plots")),
    ("cell and composition", ("cell", "composition", "rotations")),
    ("structures", ("structures",)),
    ("scattering and file formats", ("scattering", "formats")),
    ("diffraction", ("diffraction",)),
    ("density, preprocessing, indexing", ("density", "preprocess", "indexing")),
    ("map analysis and map scores", ("maps", "metrics")),
    ("model", ("model", "weights")),
    ("model inputs and data", ("inputs", "dataset")),
    ("training", ("train",)),
    ("evaluation", ("baselines", "evaluate", "evaluation_report")),
    ("prediction", ("predict",)),
    ("structure solution", ("solve",)),
    ("command line", ("cli", "__main__")),
    ("package API", ("",)),  # powdersolve/__init__.py: loads the layers below on first use
]

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
#: Modules whose functions must stay under MAX_FUNCTION_LINES (the orchestrating layers).
FUNCTION_LIMITED = ("predict", "solve", "train", "evaluate")

#: Known exceptions (none today); an entry that is no longer needed fails
#: :func:`test_the_known_exceptions_are_still_needed`.
KNOWN_LONG_MODULES: set[str] = set()
KNOWN_LONG_FUNCTIONS: set[str] = set()
#: Modules that may import powdersolve modules inside a function (none).
KNOWN_IN_FUNCTION_IMPORTS: set[str] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The powdersolve module an imported name lives in (a submodule, else its package)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every powdersolve module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("powdersolve"):
                target = _resolve(name, modules)
                if target and target != this:
                    found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) for name, path in modules.items()}


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of a powdersolve module."""
    rel = module.removeprefix("powdersolve").lstrip(".")
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (rel == prefix or rel.startswith(prefix + ".") or prefix == "") and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer; add it to LAYERS")
    return best


def test_every_module_has_a_layer() -> None:
    for module in _modules():
        if module != "powdersolve":
            assert LAYERS[layer_of(module)][1] != ("",), f"{module} is in no layer; add it to LAYERS"


def test_no_module_imports_from_a_higher_layer() -> None:
    upward = [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
              for a, targets in _graph().items() for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert upward == [], "\n".join(upward)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_find_cycles_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycles() -> None:
    assert find_cycles(_graph()) == []


def test_no_module_is_too_long() -> None:
    long = [f"{name}: {len(path.read_text().splitlines())} lines" for name, path in _modules().items()
            if len(path.read_text().splitlines()) > MAX_MODULE_LINES and name not in KNOWN_LONG_MODULES]
    assert long == [], "\n".join(long)


def _functions(path: Path):
    """(qualified name, lines) of every function in the file, nested ones and methods included."""

    def walk(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child.end_lineno - child.lineno + 1
                yield from walk(child, name)

    yield from walk(ast.parse(path.read_text(), str(path)), _module_name(path))


@pytest.mark.parametrize("scope", FUNCTION_LIMITED)
def test_no_orchestrating_function_is_too_long(scope: str) -> None:
    long = [f"{name}: {lines} lines"
            for module, path in _modules().items()
            if module == f"powdersolve.{scope}" or module.startswith(f"powdersolve.{scope}.")
            for name, lines in _functions(path)
            if lines > MAX_FUNCTION_LINES and name not in KNOWN_LONG_FUNCTIONS]
    assert long == [], "\n".join(long)


def _in_function_imports(path: Path) -> list[str]:
    """The powdersolve imports inside functions of a file, as 'function: module'."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                found += [f"{fn.name}: {n}" for n in names if n.startswith("powdersolve")]
    return found


def test_no_module_imports_inside_a_function() -> None:
    """Imports at the top only: an in-function import is how a cycle or an upward edge gets hidden."""
    hidden = [f"{module}.{entry}" for module, path in _modules().items() if module not in KNOWN_IN_FUNCTION_IMPORTS
              for entry in _in_function_imports(path)]
    assert hidden == [], "\n".join(hidden)


def test_the_known_exceptions_are_still_needed() -> None:
    """An exception whose module shrank, or went, must leave the lists above."""
    modules = _modules()
    stale = [m for m in KNOWN_LONG_MODULES
             if m not in modules or len(modules[m].read_text().splitlines()) <= MAX_MODULE_LINES]
    lengths = {name: lines for path in modules.values() for name, lines in _functions(path)}
    stale += [f for f in KNOWN_LONG_FUNCTIONS if lengths.get(f, 0) <= MAX_FUNCTION_LINES]
    stale += [m for m in KNOWN_IN_FUNCTION_IMPORTS if m not in modules or not _in_function_imports(modules[m])]
    assert stale == [], f"remove from the known exceptions: {stale}"


def test_the_package_api_is_functions_though_subpackages_share_their_names() -> None:
    assert inspect.isfunction(powdersolve.predict) and powdersolve.predict is pipeline.predict
    assert inspect.isfunction(powdersolve.solve) and powdersolve.solve is solve_pipeline.solve
    assert powdersolve.PredictConfig is PredictConfig
