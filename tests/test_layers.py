"""The layering of the product code (`.importlinter`): leo_optima.core <- tenants <- optimizer <-
billing <- the wiring (settings, urls, asgi, wsgi, celery); and no import circle anywhere in it,
between two modules or two sibling packages. import-linter and grimp count imports inside
functions and under TYPE_CHECKING too, so no circle can hide there."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())", "--config", str(ROOT / ".importlinter"), "--no-cache"]


def _lint() -> subprocess.CompletedProcess[str]:
    return subprocess.run(LINT, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_layering_contract_is_kept() -> None:
    result = _lint()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_an_import_up_the_layers_breaks_it_even_inside_a_function() -> None:
    probe = ROOT / "tenants" / "_layer_probe.py"
    probe.write_text("def reach_up():\n    from optimizer import models  # tenants may not import optimizer\n"
                     "    return models\n")
    try:
        result = _lint()
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "tenants._layer_probe -> optimizer.models" in result.stdout, result.stdout[-3000:]


# --- no import circle ---------------------------------------------------------------------------
# The layers contract keeps arrows between the apps one way; inside an app two modules, or two
# sibling packages (optimizer.pipeline and optimizer.providers), could still import each other.
# These tests build the import graph with grimp (import-linter's own graph: imports inside
# functions and under TYPE_CHECKING count) and fail naming every circle.

PRODUCT = ("leo_optima", "tenants", "optimizer", "billing", "fake_upstream")
Edges = dict[str, set[str]]


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PRODUCT, cache_dir=None)


def _module_edges(graph: grimp.ImportGraph) -> Edges:
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def _sibling_edges(graph: grimp.ImportGraph) -> tuple[Edges, dict[tuple[str, str], str]]:
    """Each package's direct children (a subpackage counted as one node) and which import which;
    with one module-level import as the example for each arrow. Arrows between a package and its
    own modules, and between the top-level packages (the layers contract's business), are left out."""
    edges: Edges = {}
    example: dict[tuple[str, str], str] = {}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            a, b = importer.split("."), imported.split(".")
            common = 0
            while common < min(len(a), len(b)) and a[common] == b[common]:
                common += 1
            if common == 0 or common in (len(a), len(b)):
                continue
            source, target = ".".join(a[:common + 1]), ".".join(b[:common + 1])
            edges.setdefault(source, set()).add(target)
            edges.setdefault(target, set())
            example.setdefault((source, target), f"{importer} -> {imported}")
    return edges, example


def _strongly_connected(edges: Edges) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _a_cycle(edges: Edges, component: list[str]) -> list[str]:
    """One shortest circle through the component's first node, for the failure message."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, set()) & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    return component


def _circles(graph: grimp.ImportGraph) -> list[str]:
    """Every import circle, between modules and between sibling packages, one line each."""
    found = []
    modules = _module_edges(graph)
    for component in _strongly_connected(modules):
        found.append("modules: " + " -> ".join(_a_cycle(modules, component))
                     + (f" (in a circle of {len(component)}: {', '.join(component)})" if len(component) > 2 else ""))
    siblings, example = _sibling_edges(graph)
    for component in _strongly_connected(siblings):
        if not any(graph.find_children(member) for member in component):
            continue  # modules only: already named above
        cycle = _a_cycle(siblings, component)
        imports = "; ".join(example[(a, b)] for a, b in itertools.pairwise(cycle))
        found.append("packages: " + " -> ".join(cycle) + f" (by {imports})")
    return found


def test_no_import_circle_between_product_modules_or_packages() -> None:
    circles = _circles(_graph())
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_a_planted_circle_is_found_even_inside_a_function_or_under_type_checking() -> None:
    probes = {
        # two modules importing each other: one inside a function, one for type checking only
        ROOT / "tenants" / "_cycle_probe_a.py": "def later():\n    from tenants import _cycle_probe_b\n"
                                                 "    return _cycle_probe_b\n",
        ROOT / "tenants" / "_cycle_probe_b.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                                 "    from tenants import _cycle_probe_a\n",
        # the providers reaching back into the pipeline, which imports them
        ROOT / "optimizer" / "providers" / "_cycle_probe.py": "def later():\n"
                                                               "    from optimizer.pipeline import types\n"
                                                               "    return types\n",
    }
    for path, text in probes.items():
        path.write_text(text)
    try:
        circles = _circles(_graph())
    finally:
        for path in probes:
            path.unlink()
    assert "modules: tenants._cycle_probe_a -> tenants._cycle_probe_b -> tenants._cycle_probe_a" in circles, circles
    assert any(c.startswith("packages: ") and "optimizer.providers._cycle_probe -> optimizer.pipeline.types" in c
               for c in circles), circles
