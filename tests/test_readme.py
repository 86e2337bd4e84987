"""The README's API example, run as written against the launched app (with the sample photo's real path), and its
commented output checked against what comes back; and the README's model-family cards, loaded and run as written."""

import ast
import json
import re

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
    assert rounded(result["scope"]) == commented(code, 'result["scope"]')
    assert re.search(r"model=\"inat_bird\"", code)


def readme_family_cards() -> list[dict]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Model families") :]
    section = section[: section.index("\n## ")]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", section, flags=re.S)]


def write_files_for(card: dict, folder) -> None:
    """The files a README card names, made the way their own tools make them (random weights)."""
    import families
    import timm
    from safetensors.torch import save_file

    labels = [label.split(" (")[0] for label in families.BIRD_LABELS]
    network = card["architecture"].split(":", 1)[1]
    if card["architecture"].startswith("timm:"):
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


def test_readme_model_family_recipes(tmp_path):
    from PIL import Image

    from explorer.identify.answer import identify
    from explorer.models.cards import parse_model_card
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings
    from explorer.taxa.taxonomy import load_taxonomy

    cards = readme_family_cards()
    assert [c["name"] for c in cards] == ["my_vit", "my_swin", "inat21_vit", "bioscan_rdnet"]
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
    vit = loaded["my_vit"][0]
    assert (vit.cam_layer_name, vit.cam_layout.prefix, vit.cam_layout.grid) == ("blocks.11.norm1", 5, (24, 24))
    assert vit.preprocess(photo).shape == (1, 3, 384, 384)
    swin = loaded["my_swin"][0]
    assert (swin.cam_layer_name, swin.cam_layout.kind) == ("layers.3.blocks.1.norm1", "nhwc")
    inat21 = loaded["inat21_vit"][0]
    assert inat21.labels[0].lineage.note == "agrees with the iNat taxonomy" and inat21.labels[0].common_name
    assert [a.rank for a in loaded["bioscan_rdnet"][1].rank_answers] == ["order", "family", "genus"]


def readme_curl_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**Without Python**") :]
    return section[section.index("```bash\n") + len("```bash\n") : section.index("\n```\n")]


@pytest.mark.shared_data
def test_readme_curl_example_runs_and_answers_with_the_chickadee(app_url, tmp_path):
    import shutil
    import subprocess

    if shutil.which("curl") is None:
        pytest.skip("the README's HTTP example uses curl, which this machine lacks")
    code = readme_curl_example()
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
    assert lines[lines.index("event: complete") + 1].startswith(shown)  # the README's output, as far as it shows it
