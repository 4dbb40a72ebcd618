"""The package layout, checked statically (ast) over every module of relcurate, lazy
(function-level) imports included: no import cycle, no import from a lower layer into a higher
one, exports never load torch model code, and pages / CLI commands hold no store sessions or SQL.
Every module must also import on its own."""
from __future__ import annotations

import ast
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import relcurate

# Scripts that other programs run (importing them would run them).
NOT_IMPORTABLE = {"relcurate.labeling_ui.app"}  # `streamlit run` executes it

# (layer, forbidden layers it must not import)
UPWARD = {
    "models": {"curation", "labeling_ui", "exports", "training", "cli"},
    "curation": {"labeling_ui", "cli", "training", "exports"},
    "exports": {"labeling_ui", "cli"},
}
DB_MAY_IMPORT = {"db", "workspace"}
# The models modules that load no torch model code: the only ones exports may import.
TORCH_FREE_MODELS = {"relcurate.models", "relcurate.models.protocols", "relcurate.models.backends",
                     "relcurate.models.index"}
STORE_CALLS = {"session_scope", "read_scope", "select"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported relcurate module
    line: int

    def __str__(self) -> str:
        return f"{self.source} imports {self.target} (line {self.line})"


def _modules() -> dict[str, Path]:
    out = {"relcurate": Path(relcurate.__file__)}
    for info in pkgutil.walk_packages(relcurate.__path__, "relcurate."):
        spec = info.module_finder.find_spec(info.name)
        out[info.name] = Path(spec.origin)
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The relcurate module `name` lands in (a dotted name may end in a function or class)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):  # ast.walk reaches imports inside functions too (lazy imports)
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from pkg import mod` imports pkg.mod; `from mod import name` imports mod
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.append(Import(module, target, node.lineno))
    return found


IMPORTS = [imp for m, p in MODULES.items() for imp in _imports(m, p)]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_walk_finds_the_package():
    assert {"relcurate.db.models", "relcurate.curation.groups.membership", "relcurate.labeling_ui.widgets",
            "relcurate.models.protocols", "relcurate.cli.groups"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(set(MODULES) - NOT_IMPORTABLE))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        graph[imp.source].add(imp.target)
    cycles = _strongly_connected(graph)
    by_pair = {(i.source, i.target): i for i in IMPORTS}
    messages = []
    for comp in cycles:
        inside = [str(by_pair[(a, b)]) for a in sorted(comp) for b in sorted(graph[a]) if b in comp]
        messages.append("cycle among " + ", ".join(sorted(comp)) + ": " + "; ".join(inside))
    assert not messages, "\n".join(messages)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative; components of more than one module (or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in graph[node]:
                    out.append(comp)
    return out


def _upward(imp: Import) -> str | None:
    src, dst = _layer(imp.source), _layer(imp.target)
    if dst in UPWARD.get(src, ()):
        return f"upward import ({src} -> {dst}): {imp}"
    if src == "db" and dst not in DB_MAY_IMPORT:
        return f"db may import only db and workspace: {imp}"
    if src == "exports" and dst == "models" and imp.target not in TORCH_FREE_MODELS:
        return f"exports must not import torch-loading model code: {imp}"
    return None


def test_no_upward_import():
    problems = [p for p in map(_upward, IMPORTS) if p]
    assert not problems, "\n".join(problems)


def test_the_layer_rules_catch_what_they_should():
    assert _upward(Import("relcurate.models.registry", "relcurate.curation.groups.anonymity", 3))
    assert _upward(Import("relcurate.curation.groups.captions", "relcurate.labeling_ui.images", 3))
    assert _upward(Import("relcurate.db.models", "relcurate.accounts", 3))
    assert "torch-loading" in _upward(Import("relcurate.exports.sft", "relcurate.models.qwen_captioner", 3))
    assert _upward(Import("relcurate.exports.sft", "relcurate.models.protocols", 3)) is None
    assert _upward(Import("relcurate.db.engine", "relcurate.workspace", 3)) is None
    assert _strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]


def _thin_layer_modules() -> list[str]:
    return sorted(m for m in MODULES if m.startswith("relcurate.labeling_ui.pages_")
                  or (m.startswith("relcurate.cli.") and m != "relcurate.cli"))


def _store_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in STORE_CALLS:
                found.append(f"{name}( at line {node.lineno}")
    return found


@pytest.mark.parametrize("module", _thin_layer_modules())
def test_pages_and_cli_hold_no_sessions_or_sql(module):
    found = _store_calls(MODULES[module])
    assert not found, f"{module} opens a store session or runs SQL ({', '.join(found)}): call a library function"
