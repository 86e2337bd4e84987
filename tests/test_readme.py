"""The README's API example, run as written against the launched app (with the sample photo's real path), and its
commented output checked against what comes back."""

import ast
import re

import pytest
from conftest import CORAL, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def readme_api_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The `identify` API") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]


def commented(code: str, expression: str):
    """The value written in comments under a line ``expression``."""
    lines = code.splitlines()
    start = lines.index(expression) + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        block.append(line[1:].strip())
    return ast.literal_eval(" ".join(block))


def rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def test_readme_identify_example_runs_and_its_output_is_true(app_url):
    code = readme_api_example()
    runnable = code.replace('"http://127.0.0.1:7860/"', repr(app_url)).replace(
        '"bird.bmp"', repr(str(CORAL / "bird.bmp"))
    )
    namespace: dict = {}
    exec(compile(runnable, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    result = namespace["result"]
    assert rounded(result["predictions"][0]) == commented(code, 'result["predictions"][0]')
    assert result["rollup"]["text"] == commented(code, 'result["rollup"]["text"]')
    assert rounded(result["scope"]) == commented(code, 'result["scope"]')
    assert re.search(r"model=\"inat_bird\"", code)
