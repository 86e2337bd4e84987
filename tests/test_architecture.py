"""House rule: only explorer/ui.py and app.py import gradio; the core stays testable without it."""

import ast

from conftest import ROOT

ALLOWED = {"explorer/ui.py", "app.py"}


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_only_ui_imports_gradio():
    offenders = []
    for path in [ROOT / "app.py", *(ROOT / "explorer").rglob("*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel not in ALLOWED and any(name.split(".")[0] in {"gradio", "gradio_client"} for name in _imports(path)):
            offenders.append(rel)
    assert offenders == []


def test_no_parent_paths_in_package():
    for path in (ROOT / "explorer").rglob("*.py"):
        assert "'../" not in path.read_text() and '"../' not in path.read_text(), path
