"""The package's layers (docs/architecture.md): no import cycle, and no module imports a layer above its own.

Module-level imports only (what runs at import time); imports under ``if TYPE_CHECKING:``, under
``if __name__ == "__main__":`` (a module run as a script) and inside functions (the lazy ones, e.g.
cli -> tui.app) are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hogwild_local"

# the layer of a module, by the longest matching prefix; a module may import its own layer and the ones below
LAYERS = {
    "hogwild_local": 0,  # the package itself: version and lazy exports only
    "hogwild_local.errors": 0,
    "hogwild_local.native": 1,  # knows llama.cpp, not the method
    "hogwild_local.models": 1.5,  # model files: may use native, native never uses it
    "hogwild_local.engine": 2,  # the method
    "hogwild_local.measure": 3,  # measurements
    "hogwild_local.tui": 4,  # interfaces
    "hogwild_local.serve": 4,  # the HTTP API
    "hogwild_local.cli": 4.5,  # the command line may start the TUI; the TUI never imports the command line
    "hogwild_local.__main__": 5,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> float:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run at import time (also inside try/if at module level; not TYPE_CHECKING's or
    a script's)."""
    found: list[ast.Import | ast.ImportFrom] = []
    body = list(tree.body)
    while body:
        node = body.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and not any(w in ast.unparse(node.test) for w in ("TYPE_CHECKING", "__name__")):
            body += node.body + node.orelse
        elif isinstance(node, ast.Try):
            body += node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body]
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges.update(t for t in targets if t in modules and t != name)
    return graph


def test_no_module_imports_a_higher_layer():
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
              for a, targets in import_graph().items() for b in targets if layer(b) > layer(a)]
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_graph_is_read():
    """The checks above see the real imports (a parser that found none would pass them)."""
    graph = import_graph()
    assert "hogwild_local.engine.config" in graph["hogwild_local.engine.generation"]
    assert "hogwild_local.cli" in graph["hogwild_local.__main__"]
    assert "hogwild_local.errors" in graph["hogwild_local.native.errors"]
