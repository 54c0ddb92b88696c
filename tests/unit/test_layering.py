"""The package's rooms (docs/architecture.md): imports go down the layers, never up, never in a circle, never private.

Every import of every module under aisci/ is read with `ast` (imports inside functions too: a lazy import
is still a dependency), so a new module or package that breaks the layering fails here, not in review.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "aisci"

# Layers, lowest first. A module may import its own package and any package of a lower layer; packages
# of one layer are independent of each other. "base" is the small set of top-level modules.
LAYERS: list[set[str]] = [
    {"base"},
    {"slurm"},
    {"germline", "splice", "protein", "placement", "demo"},
    {"cohort", "catalog"},
    {"pipelines", "report"},
    {"cli"},
]
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}
# Folders that the wheel maps into aisci/ from the repository (pyproject's package-dir) hold no Python.
DATA = {"workflows", "rules", "envs", "profiles", "schemas", "__pycache__"}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if DATA & set(rel.parts):
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


def room(module: str) -> str:
    """The room of a module: its package under aisci/, "cli" for the dispatcher, else "base"."""
    parts = module.split(".")
    if module == "aisci.cli":
        return "cli"
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "base"


def imports(mods: dict[str, Path]) -> list[tuple[str, str, str, int]]:
    """(importer, imported module, imported name or "", line) of every aisci import."""
    found = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(name, a.name, "", node.lineno) for a in node.names if a.name.startswith("aisci")]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                if base == "aisci" or base.startswith("aisci."):
                    for a in node.names:
                        sub = f"{base}.{a.name}"
                        found.append((name, sub, "", node.lineno) if sub in mods else (name, base, a.name, node.lineno))
    return found


MODS = modules()
IMPORTS = imports(MODS)


def test_every_package_has_a_layer():
    rooms = {room(m) for m in MODS}
    assert rooms - set(RANK) == set(), "place the new package in LAYERS (and in docs/architecture.md)"


def test_imports_go_down_never_up_or_sideways():
    wrong = []
    for src, dst, _, line in IMPORTS:
        a, b = room(src), room(dst)
        if a != b and RANK[b] >= RANK[a]:
            wrong.append(f"{MODS[src].relative_to(PACKAGE.parent)}:{line}: {src} ({a}) imports {dst} ({b})")
    assert wrong == []


def test_no_private_name_of_another_module_is_imported():
    wrong = [f"{MODS[src].relative_to(PACKAGE.parent)}:{line}: {dst}.{name}" for src, dst, name, line in IMPORTS
             if name.startswith("_") and not name.startswith("__") and dst != src]
    assert wrong == []


def test_no_private_attribute_of_an_imported_module_is_used():
    """``from aisci.x import y`` then ``y._z``: the same reach into another module's privates."""
    wrong = []
    for name, path in MODS.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aisci"):
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODS:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    assert wrong == []


def test_the_import_graph_has_no_cycle():
    graph = defaultdict(set)
    for src, dst, _, _ in IMPORTS:
        if dst != src and dst != "aisci":
            graph[src].add(dst)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in sorted(MODS):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_every_base_module_serves_more_than_one_room():
    """A top-level module used by one stage only belongs in that stage's package."""
    users = defaultdict(set)
    for src, dst, _, _ in IMPORTS:
        if room(dst) == "base" and dst != src:
            users[dst].add(room(src) if room(src) != "base" else src)
    snakefiles = [p.read_text() for p in (PACKAGE.parent / "workflows").glob("*/Snakefile")]
    lonely = []
    for m in MODS:
        if room(m) != "base" or m == "aisci":
            continue
        used = set(users[m]) | {"Snakefiles" for text in snakefiles if f"from {m} import" in text}
        if len(used) < 2:
            lonely.append(f"{m}: used by {sorted(used) or 'nothing'}")
    assert lonely == []


@pytest.mark.parametrize("rooms", LAYERS, ids=lambda r: "+".join(sorted(r)))
def test_each_layer_exists(rooms):
    """The table above stays true to the tree: no layer names a package that is gone."""
    present = {room(m) for m in MODS}
    assert rooms <= present


# Tests of the whole repository rather than of one module.
CROSS_CUTTING = {"test_docs", "test_envs", "test_fuzz_inputs", "test_layering"}


def test_unit_tests_mirror_the_tree():
    """tests/unit/<room>/test_<module>[_<aspect>].py tests aisci/<room>/<module>.py; base modules at the top."""
    unit = Path(__file__).resolve().parent
    strays = []
    for path in sorted(unit.rglob("test_*.py")):
        rel = path.relative_to(unit)
        if rel.parts[0] == "data" or (len(rel.parts) == 1 and path.stem in CROSS_CUTTING):
            continue
        folder = PACKAGE.joinpath(*rel.parts[:-1])
        words = path.stem.removeprefix("test_").split("_")
        if not any((folder / f"{'_'.join(words[:n])}.py").is_file() for n in range(len(words), 0, -1)):
            strays.append(str(rel))
    assert strays == []

