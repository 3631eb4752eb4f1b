"""The package layout imports one way: the import graph of gateway/, read with `ast`, has no cycle.

Every import counts, at module level and inside functions (a lazy import is still a dependency,
only a hidden one), and so do imports under `if TYPE_CHECKING:`. The rules, from docs/internals.md:

- no cycle between packages (core, config, spc, store, alerts, outputs, tools, sim, sources and the
  top-level modules cli, app, pipeline) and no cycle between modules;
- core imports nothing of ours and no protocol library;
- spc imports only spc, numpy and the standard library;
- nothing in core, config, spc, store, alerts or sources imports the line-side service
  (outputs.websocket).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parent.parent / "gateway"
PACKAGES = ("core", "config", "spc", "store", "alerts", "outputs", "tools", "sim", "sources")
BELOW_THE_LINE_SIDE_SERVICE = ("core", "config", "spc", "store", "alerts", "sources")
WEBSOCKET = "gateway.outputs.websocket"

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first such import}


def module_name(path: Path) -> str:
    parts = path.relative_to(GATEWAY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(GATEWAY.rglob("*.py"))}


def imported(tree: ast.AST, name: str, is_package: bool, ours: set[str]) -> list[tuple[str, int]]:
    """Every module this module imports, anywhere in it, with the line: ours resolved to the module
    (`from gateway.store import reads` is gateway.store.reads, `from gateway.store import Store` is the
    package gateway.store), others by their top-level name."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in ours else base, node.lineno))
    return found


def import_graph() -> tuple[Graph, dict[str, set[str]]]:
    """The edges between our modules, and each module's third-party and standard-library imports."""
    ours = modules()
    graph: Graph = {name: {} for name in ours}
    outside: dict[str, set[str]] = {name: set() for name in ours}
    for name, path in ours.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for target, line in imported(tree, name, path.name == "__init__.py", set(ours)):
            if target.split(".")[0] != "gateway":
                outside[name].add(target.split(".")[0])
            elif target in ours and target not in ("gateway", name):  # "gateway": its __version__
                graph[name].setdefault(target, line)
    return graph, outside


def package_of(module: str) -> str:
    """core, config, ... for a module in a package; cli, app, pipeline for a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def describe(graph: Graph, component: list[str], key=lambda m: m) -> list[str]:
    """The imports that make up one cycle, as 'a -> b (line n)'."""
    members = set(component)
    return [f"{src} -> {dst} (line {line})" for src, targets in sorted(graph.items()) if key(src) in members
            for dst, line in sorted(targets.items()) if key(dst) in members and key(dst) != key(src)]


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph()[0]


@pytest.fixture(scope="module")
def outside() -> dict[str, set[str]]:
    return import_graph()[1]


def test_every_module_is_in_a_package_or_is_one_of_the_top_level_ones(graph):
    top_level = sorted(m for m in graph if m.count(".") == 1 and package_of(m) not in PACKAGES)
    assert top_level == ["gateway.app", "gateway.cli", "gateway.pipeline"]


def test_no_cycle_between_modules(graph):
    edges = {m: {t for t in targets if t != m} for m, targets in graph.items()}
    found = cycles(edges)
    assert not found, "import cycles between modules:\n" + "\n".join(
        "  " + "; ".join(describe(graph, c)) for c in found)


def test_no_cycle_between_packages(graph):
    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == "gateway":
            continue
        edges.setdefault(package_of(module), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(module))
    found = cycles(edges)
    assert not found, "import cycles between packages:\n" + "\n".join(
        "  " + "; ".join(describe(graph, c, package_of)) for c in found)


def test_core_imports_nothing_of_ours_and_no_protocol_library(graph, outside):
    core = [m for m in graph if package_of(m) == "core"]
    assert core, "no gateway.core package"
    ours = [f"{m} -> {t} (line {line})" for m in core for t, line in graph[m].items() if package_of(t) != "core"]
    assert not ours, "core imports other packages of ours:\n" + "\n".join(ours)
    allowed = set(sys.stdlib_module_names) | {"orjson"}  # orjson: the JSON codec's fast path
    libraries = sorted(f"{m}: {lib}" for m in core for lib in outside[m] - allowed)
    assert not libraries, f"core imports libraries beyond the standard library and orjson: {libraries}"


def test_spc_imports_only_spc_numpy_and_the_standard_library(graph, outside):
    spc = [m for m in graph if package_of(m) == "spc"]
    assert spc, "no gateway.spc package"
    ours = [f"{m} -> {t} (line {line})" for m in spc for t, line in graph[m].items() if package_of(t) != "spc"]
    assert not ours, "spc imports other packages of ours:\n" + "\n".join(ours)
    allowed = set(sys.stdlib_module_names) | {"numpy"}
    libraries = sorted(f"{m}: {lib}" for m in spc for lib in outside[m] - allowed)
    assert not libraries, f"spc imports libraries beyond numpy and the standard library: {libraries}"


def test_nothing_below_the_line_side_service_imports_it(graph):
    below = [m for m in graph if package_of(m) in BELOW_THE_LINE_SIDE_SERVICE]
    wrong = [f"{m} -> {t} (line {line})" for m in below for t, line in graph[m].items()
             if t == WEBSOCKET or t.startswith(WEBSOCKET + ".")]
    assert not wrong, "imports of the line-side service (outputs.websocket) from below it:\n" + "\n".join(wrong)


def test_the_graph_sees_imports_inside_functions_and_under_type_checking():
    # the reader itself: a lazy import and a TYPE_CHECKING import are both edges
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway.store import Store\n"
              "def f():\n    from gateway.config.load import load_config\n")
    names = {target for target, _ in imported(ast.parse(source), "gateway.x", False, set(modules()))}
    assert {"gateway.store", "gateway.config.load"} <= names
