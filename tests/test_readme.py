"""The README's API example, run as written against the launched app (with the sample photo's real path), and its
commented output checked against what comes back; the API reference's curl example, run against the app; and the
model cards of "Bring your own model" (docs/guide/bring-your-own-model.md), loaded and run as written, with the page's
explorer-evaluate line run on the first. tests/test_docs.py maps each of these blocks to its test here."""

import ast
import json
import re
import shlex

import pytest
from conftest import CORAL, ROOT

pytestmark = pytest.mark.slow


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


@pytest.mark.shared_data
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
    assert result["provenance"] == commented(code, 'result["provenance"]')
    assert rounded(result["scope"]) == commented(code, 'result["scope"]')
    assert re.search(r"model=\"inat_bird\"", code)


BRING_YOUR_OWN = ROOT / "docs" / "guide" / "bring-your-own-model.md"
API_PAGE = ROOT / "docs" / "reference" / "api.md"


def docs_model_cards() -> list[dict]:
    """Every JSON card on the "Bring your own model" page, in order."""
    text = BRING_YOUR_OWN.read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, flags=re.S)]


def docs_evaluate_line() -> str:
    """The page's explorer-evaluate command (its one bash block)."""
    text = BRING_YOUR_OWN.read_text(encoding="utf-8")
    (block,) = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    return block


def write_files_for(card: dict, folder) -> None:
    """The files a README card names, made the way their own tools make them (random weights)."""
    import families
    import timm
    import torch
    from safetensors.torch import save_file

    labels = [label.split(" (")[0] for label in families.BIRD_LABELS]
    network = card["architecture"].split(":", 1)[1]
    if card["architecture"].startswith("torchvision:"):  # a state_dict as DDP saves it: the prefix is stripped
        from explorer.models.registry import create_model

        model = create_model(card["architecture"], len(labels))
        torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, folder / card["weights"]["file"])
        (folder / card["labels_file"]).write_text("\n".join(labels) + "\n")
    elif card["architecture"].startswith("timm:"):
        model = timm.create_model(network, num_classes=len(labels), **card.get("architecture_args", {}))
        save_file(model.state_dict(), str(folder / card["weights"]["file"]))
        (folder / card["labels_file"]).write_text("\n".join(labels) + "\n")
    elif network == "rdnet_t":  # the BIOSCAN encoder (tiny config, saved by birder) and its heads
        encoder = families.write_bioscan_style_checkpoint(folder, "tmp_rdnet")
        names = json.loads(encoder.read_text())
        (folder / names["weights"]["file"]).rename(folder / card["weights"]["file"])
        for rank, file in {"species": names["head_weights"], **names["rank_heads"]}.items():
            (folder / file).rename(folder / (card["head_weights"] if rank == "species" else card["rank_heads"][rank]))
    else:  # the iNat21 ViT (tiny config, saved by birder)
        written = families.write_birder_checkpoint(folder, "tmp_vit", heads=False)
        (folder / json.loads(written.read_text())["weights"]["file"]).rename(folder / card["weights"]["file"])


def test_model_card_recipes_in_the_docs(tmp_path, monkeypatch):
    from PIL import Image

    from explorer.identify.answer import identify
    from explorer.models.cards import parse_model_card
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings
    from explorer.taxa.taxonomy import load_taxonomy

    cards = docs_model_cards()
    assert [c["name"] for c in cards] == ["my_tits", "my_vit", "my_swin", "inat21_vit", "bioscan_rdnet"]
    photo = (
        Image.open(CORAL / "bird.bmp").convert("RGB") if (CORAL / "bird.bmp").is_file() else Image.new("RGB", (90, 60))
    )
    taxonomy = load_taxonomy(["Poecile atricapillus", "Poecile gambeli", "Parus major", "Athene cunicularia"])
    loaded = {}
    for card in cards:
        folder = tmp_path / card["name"]
        folder.mkdir()
        write_files_for(card, folder)
        (folder / f"{card['name']}.json").write_text(json.dumps(card))
        parsed = parse_model_card(card, folder / f"{card['name']}.json")
        classifier = load_classifier(parsed, Settings(checkpoint_dir=folder), taxonomy)
        result = identify(classifier, photo, top_k=3)
        assert len(result.predictions) == 3 and result.cams.shape[0] == 3
        loaded[card["name"]] = (classifier, result)
    tits = loaded["my_tits"][0]
    assert (tits.cam_layer_name, tits.labels[1].lineage.at("family")) == ("layer4", "Paridae")
    vit = loaded["my_vit"][0]
    assert (vit.cam_layer_name, vit.cam_layout.prefix, vit.cam_layout.grid) == ("blocks.11.norm1", 5, (24, 24))
    assert vit.preprocess(photo).shape == (1, 3, 384, 384)
    swin = loaded["my_swin"][0]
    assert (swin.cam_layer_name, swin.cam_layout.kind) == ("layers.3.blocks.1.norm1", "nhwc")
    inat21 = loaded["inat21_vit"][0]
    assert inat21.labels[0].lineage.note == "agrees with the iNat taxonomy" and inat21.labels[0].common_name
    assert [a.rank for a in loaded["bioscan_rdnet"][1].rank_answers] == ["order", "family", "genus"]
    evaluate_as_the_page_says(tmp_path, monkeypatch)


def evaluate_as_the_page_says(tmp_path, monkeypatch) -> None:
    """The page's explorer-evaluate line, run in the folder that holds my_tits's card, over photos made here (a
    folder per species), with the test's own --checkpoint-dir and --data-root added."""
    from PIL import Image

    from explorer.diagnose.schema import load_table
    from explorer.tools.evaluate import main as evaluate

    command = shlex.split(docs_evaluate_line())
    assert command[:3] == ["explorer-evaluate", "--model", "my_tits"]
    for species in ("Parus major", "Poecile gambeli"):
        (tmp_path / "my_tits_photos" / species).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (64 + i, 48), (90 * i, 120, 200)).save(tmp_path / "my_tits_photos" / species / f"{i}.jpg")
    monkeypatch.chdir(tmp_path)
    evaluate([*command[1:], "--checkpoint-dir", str(tmp_path / "my_tits"), "--data-root", str(tmp_path)])
    table = load_table(tmp_path / "assets" / "eval" / "my_tits.parquet")
    assert (len(table), set(table["model"]), set(table["status"])) == (4, {"my_tits"}, {"ok"})
    assert sorted(table["true_name"]) == ["Parus major", "Parus major", "Poecile gambeli", "Poecile gambeli"]
    assert table["in_vocab"].tolist() == [True] * 4


def docs_curl_example() -> str:
    text = API_PAGE.read_text(encoding="utf-8")
    section = text[text.index("## Without Python") :]
    return section[section.index("```bash\n") + len("```bash\n") : section.index("\n```\n")]


@pytest.mark.shared_data
def test_api_curl_example_runs_and_answers_with_the_chickadee(app_url, tmp_path):
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("the API reference's HTTP example uses curl, which this machine lacks")
    code = docs_curl_example()
    assert code.startswith("URL=http://127.0.0.1:7860\n")
    script = code.replace("URL=http://127.0.0.1:7860", f"URL={app_url.rstrip('/')}").replace(
        "files=@bird.bmp", f"files=@{CORAL / 'bird.bmp'}"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "event: complete" in lines, done.stdout[-2000:]
    data = json.loads(lines[lines.index("event: complete") + 1].removeprefix("data: "))
    top = data[0]["predictions"]
    assert len(top) == 3 and top[0]["scientific_name"] == "Poecile atricapillus"
    shown = code.splitlines()[code.splitlines().index("# event: complete") + 1].removeprefix("# ").removesuffix("...")
    assert lines[lines.index("event: complete") + 1].startswith(shown)  # the page's output, as far as it shows it


def walkthrough_blocks() -> tuple[str, dict, str, str]:
    """The walkthrough of "Bring your own model": its Python block, the my_tits card, the explorer-evaluate line and
    the output the page shows for it."""
    text = BRING_YOUR_OWN.read_text(encoding="utf-8")
    section = text[text.index("## From a saved state_dict to the dashboard") : text.index("## Model families")]
    (python,) = re.findall(r"```python\n(.*?)\n```", section, flags=re.S)
    (card,) = re.findall(r"```json\n(.*?)\n```", section, flags=re.S)
    (bash,) = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    (output,) = re.findall(r"```text\n(.*?)\n```", section, flags=re.S)
    return python, json.loads(card), bash, output


def test_bring_your_own_model_walkthrough(tmp_path):
    """The four steps as a user takes them, in a folder of their own: the page's Python saves the weights and the
    class list, the page's card goes beside them, photos in class folders named as the page names them, and the
    page's explorer-evaluate line (with --checkpoint-dir for this folder: a user of the checkout has the
    repository's checkpoints/) prints what the page shows and writes the table."""
    import subprocess
    import sys

    from PIL import Image

    from explorer.diagnose.schema import load_table

    python, card, bash, output = walkthrough_blocks()
    (tmp_path / "checkpoints").mkdir()
    saved = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert saved.returncode == 0, saved.stderr
    (tmp_path / "checkpoints" / "my_tits.json").write_text(json.dumps(card))
    folders = ("Great_Tit", "cyanistes_caeruleus", "Eurasian_Nuthatch")
    assert all(f"`my_tits_photos/{f}/`" in BRING_YOUR_OWN.read_text(encoding="utf-8") for f in folders)
    for i, folder in enumerate(folders):
        (tmp_path / "my_tits_photos" / folder).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (120, 90), (60 * i, 90 * j, 200)).save(tmp_path / "my_tits_photos" / folder / f"{j}.jpg")
    command = [*shlex.split(bash), "--checkpoint-dir", "checkpoints"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[: len(output.splitlines())] == output.splitlines()
    assert re.fullmatch(
        r"6 photos; 6 of species it knows: top-1 \d+\.\d%, top-5 100\.0%; \d labels look wrong "
        r"\(label_issue_score >= 0\.5; Diagnose lists them\) -> assets/eval/my_tits\.parquet",
        lines[-1],
    )
    table = load_table(tmp_path / "assets" / "eval" / "my_tits.parquet")
    assert sorted(set(table["true_name"])) == ["Cyanistes caeruleus", "Parus major", "Sitta europaea"]
    assert table["in_vocab"].all() and (table["status"] == "ok").all()
