"""The modules of ``edgedistill/`` import each other without a cycle, and no format imports another.

The graph is built from the source with ``ast``, not by importing. What counts as an edge:

- every ``import`` / ``from ... import``, at module level AND inside functions: a lazy import still
  ties the two modules together (it only moves the failure to run time), so it may not close a cycle;
- except imports under ``if TYPE_CHECKING:``, which never run and only name types for annotations;
- ``from package import name`` is an edge to ``package.name`` when that is a module, else to ``package``.
  A package's ``__init__`` running before its submodules is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

from edgedistill import formats

PACKAGE = Path(__file__).resolve().parents[1] / "edgedistill"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, name: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """Modules of ``edgedistill`` that the module ``name`` imports anywhere but under TYPE_CHECKING."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = name.split(".")[: len(name.split(".")) - node.level + int(is_package)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    """module -> the edgedistill modules it imports."""
    modules = _modules()
    return {name: _imported(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", modules)
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = walk(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = walk(start)
            if cycle:
                return cycle
    return None


def test_no_import_cycles():
    graph = import_graph()
    assert {"edgedistill.inference", "edgedistill.formats.base"} <= set(graph)  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_check_sees_a_cycle_and_lazy_imports():
    # the detector itself: a function-level import closing a loop is reported, TYPE_CHECKING is not
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    modules = {"pkg.x": Path("x.py"), "pkg.y": Path("y.py")}
    lazy = ast.parse("def f():\n    from pkg.y import thing\n")
    typing_only = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import y\n")
    assert _imported(lazy, "pkg.x", False, modules) == {"pkg.y"}
    assert _imported(typing_only, "pkg.x", False, modules) == set()


def _owner(module: str) -> str | None:
    """The registered format a module of ``edgedistill.formats`` belongs to (``executorch_quant`` is
    ExecuTorch's); None for shared modules (base, schemes, shared_*)."""
    leaf = module.rsplit(".", 1)[-1]
    return next((n for n in formats.names() if leaf == n or leaf.startswith(n + "_")), None)


def test_formats_import_only_shared_modules():
    graph = import_graph()
    crossing = [f"{m} imports {dep}" for m in graph if m.startswith("edgedistill.formats.")
                for dep in graph[m] if dep.startswith("edgedistill.formats.")
                and _owner(dep) is not None and _owner(dep) != _owner(m)]
    assert not crossing, "; ".join(crossing)
    shared = [m for m in graph if m.startswith("edgedistill.formats.") and _owner(m) is None]
    assert {"edgedistill.formats.base", "edgedistill.formats.schemes"} <= set(shared)
