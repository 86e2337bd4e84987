"""The shape of the package, read from its imports (ast): no cycles, dependencies pointing one way
(ui -> services -> capabilities -> models -> base), gradio only in the UI package, nothing imports app.py, no `..`
paths."""

import ast
from pathlib import Path

import pytest
from conftest import ROOT

# The layers, lowest first: each is a set of packages (a package's modules all sit in its layer). A module may
# import its own layer or a lower one, never a higher one. A new module goes into a package; a new package, here.
LAYERS = {
    "base": {"explorer.settings", "explorer.taxa", "explorer.photos", "explorer.cam"},
    "models": {"explorer.models"},
    "capabilities": {"explorer.identify", "explorer.geo", "explorer.diagnose", "explorer.represent"},
    "services": {"explorer.services"},
    "tools": {"explorer.tools"},
    "ui": {"explorer.ui"},
    "entry": {"app"},
}
ORDER = {"base": 0, "models": 1, "capabilities": 2, "services": 3, "tools": 4, "ui": 4, "entry": 5}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module == "explorer":
        return "base"  # the package's __init__
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_architecture.py")


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported anywhere in the file (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def package_graph(files: list[Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a name imported from a package counts as the package)."""
    modules = {module_name(p): p for p in files}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import cycles."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


PACKAGE_FILES = [ROOT / "app.py", *sorted((ROOT / "explorer").rglob("*.py"))]


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package():
    assert cycles(package_graph(PACKAGE_FILES)) == []


def test_dependencies_point_down_the_layers():
    wrong = []
    for module, imported in package_graph(PACKAGE_FILES).items():
        for other in imported:
            if ORDER[layer_of(other)] > ORDER[layer_of(module)]:
                wrong.append(f"{module} ({layer_of(module)}) imports {other} ({layer_of(other)})")
            elif layer_of(module) == "tools" and layer_of(other) == "ui":
                wrong.append(f"{module} (a tool) imports {other} (the UI)")
    assert wrong == []


def test_only_the_ui_package_imports_gradio():
    offenders = [
        module_name(path)
        for path in PACKAGE_FILES
        if layer_of(module_name(path)) not in ("ui", "entry")
        and any(name.split(".")[0] in {"gradio", "gradio_client"} for name in imports_of(path))
    ]
    assert offenders == []


def test_nothing_in_the_package_imports_app():
    offenders = [p.name for p in PACKAGE_FILES[1:] if any(n == "app" or n.startswith("app.") for n in imports_of(p))]
    assert offenders == []


@pytest.mark.parametrize("pattern", ["'../", '"../', ".parent.parent", "sys.path"])
def test_no_parent_paths_or_path_hacks(pattern):
    offenders = [str(p.relative_to(ROOT)) for p in [*PACKAGE_FILES, *(ROOT / "benchmarks").glob("*.py")]]
    offenders = [name for name in offenders if pattern in (ROOT / name).read_text()]
    assert offenders == []


def test_size_limits():
    """No file in the package over 450 lines, no function over 50 (house style: ~40)."""
    too_long = []
    for path in PACKAGE_FILES:
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 450:
            too_long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 50:
                too_long.append(f"{path.name}:{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def test_modules_live_in_packages_and_no_two_share_a_name():
    """Only settings.py sits beside the packages, and no two modules share a file name (``model.py`` twice made a
    reader open the wrong one); the tools are named after their commands, so a library module never takes a tool's
    name."""
    loose = sorted(p.name for p in (ROOT / "explorer").glob("*.py") if p.name not in ("__init__.py", "settings.py"))
    assert loose == []
    names: dict[str, list[str]] = {}
    for path in (ROOT / "explorer").rglob("*.py"):
        if path.name != "__init__.py":
            names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: where for name, where in names.items() if len(where) > 1} == {}


def test_every_package_is_in_a_layer():
    packages = {module_name(p.parent / "__init__.py") for p in (ROOT / "explorer").rglob("__init__.py")}
    top = {name for name in packages if name.count(".") == 1}
    assert top == {name for names in LAYERS.values() for name in names if name.startswith("explorer.")} - {
        "explorer.settings"
    }
