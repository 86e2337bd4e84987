"""The README and the docs site (docs/, mkdocs.yml): every fenced code block is run by a named test or says why not,
the references match the code they describe (each command's --help, the model card's fields, the evaluation table's
columns), the README's links resolve, and the site builds with `mkdocs build --strict`.

`python tests/test_docs.py` rewrites the generated parts of the references (the --help blocks and the columns)."""

from __future__ import annotations

import ast
import html
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_PAGE = DOCS / "reference" / "cli.md"
CARDS_PAGE = DOCS / "reference" / "model-cards.md"
TABLE_PAGE = DOCS / "reference" / "evaluation-table.md"

# The command-line reference: `python app.py` and every console script, each with the module that serves it.
COMMANDS = {
    "python app.py": "app.py",
    "explorer-evaluate": "explorer.tools.evaluate",
    "explorer-shipped": "explorer.tools.shipped",
    "explorer-scope": "explorer.tools.scope",
    "explorer-represent": "explorer.tools.represent",
    "explorer-faithfulness": "explorer.tools.faithfulness",
    "explorer-fusion": "explorer.tools.fusion",
    "explorer-fit-prior": "explorer.tools.fit_prior",
    "explorer-convert": "explorer.tools.convert",
    "explorer-train-geo": "explorer.tools.train_geo",
    "explorer-train-head": "explorer.tools.train_head",
    "explorer-manifest": "explorer.tools.manifest",
    "explorer-synonyms": "explorer.tools.synonyms",
    "explorer-results": "explorer.tools.results",
}
_CI_TEST = "tests/test_docs.py::test_ci_runs_the_readme_install_and_test_commands"
_CLI_TEST = "tests/test_docs.py::test_cli_reference_is_each_commands_help"
_RECIPES_TEST = "tests/test_readme.py::test_model_card_recipes_in_the_docs"
_EVALUATE_MY_TITS = "explorer-evaluate --model my_tits --images my_tits_photos/ --out assets/eval/my_tits.parquet"
PYTHON_WITHOUT_A_SERVER = (
    "from explorer.cam.gradcam import compute_cams  "
    "# (model, input_tensor, class_indices, target_layer, layout) -> (k, H, W)"
)

# (page, the block's first line) -> the test that runs that block. A block not named here must be preceded by
# `<!-- not run: why -->`.
RUN_BY: dict[tuple[str, str], str] = {
    ("README.md", "pip install -r requirements.txt"): _CI_TEST,  # and conftest's app_url launches `python app.py`
    ("README.md", "pytest"): _CI_TEST,
    (
        "docs/setup.md",
        "python app.py --ray-serve --tier-replicas 2",
    ): "tests/test_model_tier.py::test_the_tier_answers_as_one_process_does",
    ("docs/testing.md", "pytest"): _CI_TEST,
    (
        "README.md",
        "from gradio_client import Client, handle_file",
    ): "tests/test_readme.py::test_readme_identify_example_runs_and_its_output_is_true",
    (
        "docs/reference/api.md",
        "URL=http://127.0.0.1:7860",
    ): "tests/test_readme.py::test_api_curl_example_runs_and_answers_with_the_chickadee",
    (
        "docs/reference/api.md",
        "from gradio_client import Client, handle_file",
    ): "tests/test_api_observation.py::test_api_page_observation_example_runs_and_its_output_is_true",
    ("docs/reference/api.md", PYTHON_WITHOUT_A_SERVER): (
        "tests/test_docs.py::test_the_python_without_a_server_block_runs"
    ),
    **{("docs/guide/bring-your-own-model.md", first): _RECIPES_TEST for first in ("{", _EVALUATE_MY_TITS)},
    **{
        ("docs/guide/bring-your-own-model.md", first): "tests/test_readme.py::test_bring_your_own_model_walkthrough"
        for first in ("import torch", "6 photos from my_tits_photos (class folders: the label is the folder's name)")
    },
    **{("docs/reference/cli.md", f"$ {command} --help"): _CLI_TEST for command in COMMANDS},
}
NOT_RUN = re.compile(r"^<!-- not run: \S.* -->$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    before: str  # the last non-blank line above the fence

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def fenced_blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """Every fenced block of a Markdown file (``` or ~~~, indented or not), in order; pages named from `root`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index, before = [], 0, ""
    while index < len(lines):
        opening = re.match(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)", lines[index])
        if not opening:
            before = lines[index].strip() or before
            index += 1
            continue
        fence, start = opening[1], index
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            index += 1
        text = "\n".join(lines[start + 1 : index])
        blocks.append(Block(str(path.relative_to(root)), start + 1, opening[2], text, before))
        before, index = "", index + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in fenced_blocks(page)]


def block_on(page: str, first_line: str) -> Block:
    found = [b for b in fenced_blocks(ROOT / page) if b.first_line == first_line]
    assert len(found) == 1, f"{page}: {len(found)} blocks start with {first_line!r}"
    return found[0]


def test_every_code_block_is_run_by_a_test_or_says_why_not():
    blocks = all_blocks()
    unexplained = [
        f"{b.page}:{b.line} ({b.first_line!r})"
        for b in blocks
        if (b.page, b.first_line) not in RUN_BY and not NOT_RUN.match(b.before)
    ]
    assert unexplained == [], "blocks neither run by a test (RUN_BY) nor marked <!-- not run: why -->"
    seen = {(b.page, b.first_line) for b in blocks}
    assert sorted(set(RUN_BY) - seen) == [], "RUN_BY names blocks that no page has any more"


def test_every_test_named_for_a_block_exists():
    for node in sorted(set(RUN_BY.values())):
        file, name = node.split("::")
        tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
        assert name in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}, node


def test_the_block_finder_sees_fences_comments_and_languages(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n<!-- not run: a server -->\n\n```bash\npython app.py\n```\n  ~~~json\n  {}\n  ~~~\n")
    (first, second) = [(b.line, b.language, b.text, b.before) for b in fenced_blocks(page, root=tmp_path)]
    assert first == (4, "bash", "python app.py", "<!-- not run: a server -->")
    assert second == (7, "json", "  {}", "")
    assert NOT_RUN.match(first[3]) and not NOT_RUN.match("<!-- not run: -->")


def _ci_command(tag: str) -> str:
    """The command of .ci/run's line marked `# README: <tag>`."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    (line,) = [line for line in lines if line.endswith(f"# README: {tag}")]
    return line.split("#", 1)[0].strip()


def test_ci_runs_the_readme_install_and_test_commands():
    """CI (.ci/run) runs exactly the README's install and test commands; the app tests launch `python app.py` as the
    README's second set-up command does (explorer/ui/launcher.py, through conftest's app_url)."""
    setup = block_on("README.md", "pip install -r requirements.txt").text.splitlines()
    assert _ci_command("install") == "pip install -q -r requirements.txt"  # -q: the same install, quieter
    assert setup == [_ci_command("install").replace(" -q", ""), "python app.py"]
    assert block_on("README.md", "pytest").text == _ci_command("test") == "pytest"
    assert block_on("docs/testing.md", "pytest").text == "pytest"
    assert '[sys.executable, "app.py"' in (ROOT / "explorer" / "ui" / "launcher.py").read_text(encoding="utf-8")


def test_the_python_without_a_server_block_runs():
    code = block_on("docs/reference/api.md", PYTHON_WITHOUT_A_SERVER).text
    namespace: dict = {}
    exec(compile(code, "docs/reference/api.md", "exec"), namespace)  # noqa: S102 - the page's own example
    assert callable(namespace["compute_cams"]) and callable(namespace["identify"])


# --- the command-line reference: each command's --help -------------------------------------------------------------

# One process prints every command's help (one import of torch). The shared folder is named ../shared
# (EXPLORER_SHARED_DIR) so that its default prints the same on every machine, and the width is fixed.
_PRINT_HELPS = """
import contextlib, importlib, io, json, runpy, sys
helps = {}
for command, target in json.loads(sys.argv[1]).items():
    sys.argv = [command.removeprefix("python "), "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        if target.endswith(".py"):
            runpy.run_path(target, run_name="__main__")
        else:
            importlib.import_module(target).main(["--help"])
    helps[command] = out.getvalue()
print(json.dumps(helps))
"""


def command_helps() -> dict[str, str]:
    """{command: what `command --help` prints}, at 100 columns, with the shared folder at ../shared."""
    env = {**os.environ, "COLUMNS": "100", "EXPLORER_SHARED_DIR": "../shared"}
    done = subprocess.run(
        [sys.executable, "-c", _PRINT_HELPS, json.dumps(COMMANDS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def help_block(command: str, help_text: str) -> str:
    return f"$ {command} --help\n{help_text.rstrip()}"


def test_the_cli_reference_covers_every_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert {c: m for c, m in COMMANDS.items() if c != "python app.py"} == {
        c: target.split(":")[0] for c, target in scripts.items()
    }
    shown = [b.first_line for b in fenced_blocks(CLI_PAGE) if b.first_line.startswith("$ ")]
    assert shown == [f"$ {command} --help" for command in COMMANDS]


@pytest.mark.slow
def test_cli_reference_is_each_commands_help():
    helps = command_helps()
    for command, help_text in helps.items():
        assert help_text.startswith("usage: "), command
        page = block_on(str(CLI_PAGE.relative_to(ROOT)), f"$ {command} --help").text
        assert page == help_block(command, help_text), f"{command}: run `python tests/test_docs.py` to rewrite"


# --- the references that list what the code defines ---------------------------------------------------------------


def table_rows(page: Path, heading: str) -> list[list[str]]:
    """The cells of the first table under `heading` (header and rule rows left out)."""
    text = page.read_text(encoding="utf-8")
    section = text[text.index(f"\n{heading}\n") :]
    rows, started = [], False
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif started:
            break
    return rows[2:]


def test_the_model_card_reference_names_every_field_and_no_other():
    from explorer.models.cards import ModelCard, WeightsSpec

    named = {name.strip("`") for row in table_rows(CARDS_PAGE, "## Fields") for name in row[0].split(", ")}
    assert named == set(ModelCard.__dataclass_fields__) - {"card_path", "stated"}
    weights = {row[0].strip("`") for row in table_rows(CARDS_PAGE, "`weights`:")}
    assert weights == set(WeightsSpec.__dataclass_fields__)


# Which tables hold the columns of each schema of explorer/diagnose/schema.py (a new schema needs a line here).
SCHEMA_PRESENCE = {
    "SCHEMA": "always",
    "EXACT_CALIBRATION_SCHEMA": "tables made since the exact temperature fit",
    "IDENTITY_SCHEMA": "tables made since photos are matched by content",
    "GEO_SCHEMA": "with a place and a geo-prior",
    "HEAD_SCHEMA": "with per-rank heads",
    "LABEL_ISSUE_SCHEMA": "tables made since the label check",
    "SUBJECT_SCHEMA": "tables extended by python -m explorer.tools.subject_columns (the organism or its surroundings)",
}


def schema_rows() -> list[str]:
    """The evaluation table's columns as the reference lists them, from explorer/diagnose/schema.py."""
    from explorer.diagnose import schema

    schemas = {name: v for name, v in vars(schema).items() if name.endswith("SCHEMA") and isinstance(v, dict)}
    assert sorted(schemas) == sorted(SCHEMA_PRESENCE), "a schema without a SCHEMA_PRESENCE line (or one gone)"
    return [
        f"| `{column}` | {SCHEMA_PRESENCE[name]} | {meaning.replace('|', '/')} |"
        for name, columns in schemas.items()
        for column, meaning in columns.items()
    ]


def test_the_evaluation_table_reference_lists_the_schema_in_order():
    rows = ["| " + " | ".join(row) + " |" for row in table_rows(TABLE_PAGE, "## Every column")]
    assert rows == schema_rows(), "run `python tests/test_docs.py` to rewrite"


# --- the README and the site ---------------------------------------------------------------------------------------


def test_the_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert "docs/guide/bring-your-own-model.md" in local and "assets/screenshot.jpg" in local
    assert [t for t in local if not (ROOT / t).exists()] == []


def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "Poecile atricapillus" in api  # the README's identify example, included by pymdownx.snippets
    assert "pytorch-grad-cam (MIT)" in page_text(tmp_path / "site" / "credits" / "index.html")  # the README's credits
    architecture = page_text(tmp_path / "site" / "architecture" / "index.html")
    headings = re.findall(r"^#+ (.+)$", (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8"), flags=re.M)
    assert headings and [h for h in headings if h.replace("`", "") not in architecture] == []  # ARCHITECTURE.md


def page_text(path: Path) -> str:
    """A built page's text, tags left out."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


# --- rewriting the generated parts ----------------------------------------------------------------------------------


def _replace_block(text: str, first_line: str, new_body: str) -> str:
    start = text.index(f"```text\n{first_line}\n") + len("```text\n")
    end = text.index("\n```", start)
    return text[:start] + new_body + text[end:]


def rewrite_references() -> None:
    text = CLI_PAGE.read_text(encoding="utf-8")
    for command, help_text in command_helps().items():
        text = _replace_block(text, f"$ {command} --help", help_block(command, help_text))
    CLI_PAGE.write_text(text, encoding="utf-8")
    text = TABLE_PAGE.read_text(encoding="utf-8")
    head = text[: text.index("| column | present | meaning |")]
    rows = ["| column | present | meaning |", "| --- | --- | --- |", *schema_rows()]
    TABLE_PAGE.write_text(head + "\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    rewrite_references()
