"""The package's layers: no module imports a higher layer, and no import cycle anywhere.

Read from the source with :mod:`ast`, every ``import`` counted: the deferred ones inside
functions and those under ``if TYPE_CHECKING:`` too (a deferred import that points up is
still a dependency pointing up, and one for annotations still ties two modules). The
layers, lowest first, are the ones docs/contributing.md describes; ``simlab/__init__.py``
(the Python API's facade) and ``simlab/__main__.py`` stand above them all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "simlab"

# the ground: small modules everything may use
GROUND = ("errors", "version", "units", "rng", "io", "stats")
LAYERS = (
    "rules",
    "scenario",
    "engines",
    "fleet",
    "sweeps",
    "lab",
    "checks",
    "harness",
    "cli",
    "bench",
)
TOP = 99


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer(module: str) -> int:
    """0 for the ground, 1.. for the subpackages in LAYERS' order, TOP for the facade."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return TOP
    if parts[1] in GROUND:
        return 0
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in a layer; add it to GROUND or LAYERS")
    return 1 + LAYERS.index(parts[1])


def imports(module: str, source: str | None = None) -> set[str]:
    """The simlab modules ``module`` imports (``from pkg import sub`` counts as ``pkg.sub``);
    ``source``: the module's text, read from its file if not given."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text() if source is None else source)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            if subs:
                found.update(subs)
            elif target in MODULES:
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    found.discard(module)
    return {m for m in found if m.startswith("simlab")}


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_points_up(module):
    up = sorted(t for t in GRAPH[module] if layer(t) > layer(module))
    assert not up, f"{module} (layer {layer(module)}) imports higher layers: {up}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a path that returns to its start, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_have_teeth():
    """A deferred upward import and a cycle, in source written for the test, are both caught."""
    deferred = "def f():\n    from ..cli import main\n    from . import policy\n"
    found = imports("simlab.rules.detector", deferred)
    assert found == {"simlab.cli.main", "simlab.rules.policy"}
    assert max(layer(m) for m in found) > layer("simlab.rules.detector")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert imports("simlab.engines.model") >= {"simlab.rules.detector", "simlab.rng"}
