"""The model families users train today, as a user brings them: timm ViTs with register tokens (and a class token, and
DeiT's distillation token), a timm Swin, and a birder ViT with per-rank birder heads and iNat 2021 class names. Each
is a tiny random-weight model written the way its own library writes it (tests/families.py), loaded through a card
that names no CAM layer. Checked: the CAM layer and its layout come from the model; the fast Grad-CAM equals
pytorch-grad-cam's GradCAM with the matching reshape_transform; identify answers with lineages, embeddings and the
rank heads' answers; and cards that do not fit fail with a message that helps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from families import (
    BIRD_LABELS,
    INAT21_CLASSES,
    write_bioscan_style_checkpoint,
    write_birder_checkpoint,
    write_timm_checkpoint,
)
from PIL import Image
from test_inat21 import CHICKADEE_RANKS

from explorer.cam.gradcam import overlay_cams, reference_cams, scale_cams
from explorer.cam.layout import FeatureLayout
from explorer.identify.answer import identify, result_to_json
from explorer.models.cards import load_model_card
from explorer.models.classifier import load_classifier
from explorer.settings import Settings
from explorer.taxa.taxonomy import load_taxonomy

TIMM = ["vit_reg4", "vit_cls_reg4", "deit_distilled", "eva02", "swin"]
FAMILIES = [*TIMM, "birder_vit", "birder_rdnet"]
NAMES = [label.split(" (")[0] for label in BIRD_LABELS]
RANK_ANSWER_FIELDS = (
    "rank",
    "head_name",
    "head_probability",
    "rollup_name",
    "rollup_probability",
    "top1_name",
    "consistent",
)


def load(card_path):
    taxonomy = load_taxonomy(NAMES)
    return load_classifier(load_model_card(card_path), Settings(checkpoint_dir=card_path.parent), taxonomy)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    for family in TIMM:
        write_timm_checkpoint(folder, family)
    write_birder_checkpoint(folder)
    write_bioscan_style_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def loaded(folder):
    return {family: load(folder / f"{family}.json") for family in FAMILIES}


@pytest.fixture
def photo():
    image = Image.new("RGB", (160, 120), (90, 140, 60))
    image.paste((200, 40, 40), (20, 20, 70, 70))
    image.paste((30, 30, 220), (100, 60, 150, 110))
    return image


@pytest.mark.parametrize(
    "family, layer, layout",
    [
        ("vit_reg4", "blocks.1.norm1", FeatureLayout("tokens", 4, (4, 4))),  # 4 registers, no class token
        ("vit_cls_reg4", "blocks.1.norm1", FeatureLayout("tokens", 5, (4, 4))),  # class token + 4 registers
        ("deit_distilled", "blocks.1.norm1", FeatureLayout("tokens", 2, (4, 4))),  # class + distillation token
        ("eva02", "blocks.1.norm1", FeatureLayout("tokens", 1, (4, 4))),  # EVA-02: rotary position embedding
        ("swin", "layers.1.blocks.0.norm1", FeatureLayout("nhwc", 0, (8, 8))),
        ("birder_vit", "encoder.block.1.norm1", FeatureLayout("tokens", 4, (4, 4))),
    ],
)
def test_cam_layer_and_layout_come_from_the_model(loaded, family, layer, layout):
    classifier = loaded[family]
    assert (classifier.cam_layer_name, classifier.cam_layout) == (layer, layout)
    assert classifier.cam_layer_why.startswith("not named in the card: the last transformer block's pre-attention")


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_gradcam_equals_pytorch_grad_cam_with_reshape_transform(loaded, family, photo):
    classifier = loaded[family]
    x = classifier.preprocess(photo)
    _logits, indices, cams = classifier.forward_with_cams(x, lambda logits: torch.topk(logits[0], 4).indices.tolist())
    fast = scale_cams(torch.from_numpy(cams), tuple(x.shape[-2:]))
    reference = reference_cams(classifier.module, x, indices, classifier.cam_layer, layout=classifier.cam_layout)
    assert fast.shape == reference.shape == (4, *x.shape[-2:])
    assert all(m.std() > 0.01 for m in reference)  # real maps, not constants
    worst = min(np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(fast, reference))
    assert worst > 0.999, worst


@pytest.mark.parametrize("family", ["vit_cls_reg4", "swin", "birder_vit"])
def test_every_batched_method_equals_pytorch_grad_cam_on_transformers(loaded, family):
    from test_cam import batched_vs_reference

    classifier = loaded[family]
    rng = np.random.default_rng(0)
    x = classifier.preprocess(Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)))
    worst = batched_vs_reference(classifier.module, x, classifier.cam_layer, [0, 1, 2, 3], layout=classifier.cam_layout)
    assert min(worst.values()) > 0.999, worst


def test_every_cam_method_runs_on_tokens(loaded, photo):
    """Through identify on a ViT with a class token and registers, each method's maps are real (not constant) and
    pytorch-grad-cam's for the same classes, with the layout as its reshape_transform."""
    classifier = loaded["vit_cls_reg4"]
    x = classifier.preprocess(photo)
    for method in ("gradcam++", "eigencam", "layercam"):  # batched: maps at the 4x4 patch grid
        result = identify(classifier, photo, top_k=2, cam_method=method)
        assert result.cams.shape == (2, 4, 4) and all(np.ptp(m) > 0 for m in result.cams)
        indices = [p.class_index for p in result.predictions]
        # scaled to the input as pytorch-grad-cam scales its own (Grad-CAM++'s maps here span only ~3e-5 before it)
        ours = scale_cams(torch.from_numpy(result.cams), (64, 64))
        assert all(m.std() > 0.05 for m in ours), method
        reference = f"{method} (pytorch-grad-cam)"
        theirs = reference_cams(classifier.module, x, indices, classifier.cam_layer, reference, classifier.cam_layout)
        assert min(correlations(ours, theirs)) > 0.999, method
    for reference, method in (("gradcam (pytorch-grad-cam)", "gradcam"), ("eigencam (pytorch-grad-cam)", "eigencam")):
        result = identify(classifier, photo, top_k=2, cam_method=reference)  # the reference: maps at the input size
        assert result.cams.shape == (2, 64, 64) and all(m.std() > 0.05 for m in result.cams)
        batched = identify(classifier, photo, top_k=2, cam_method=method)
        assert [p.class_index for p in result.predictions] == [p.class_index for p in batched.predictions]
        ours = scale_cams(torch.from_numpy(batched.cams), (64, 64))
        assert min(correlations(ours, result.cams)) > 0.999, reference


def correlations(maps: np.ndarray, others: np.ndarray) -> list[float]:
    """Pearson correlation of each map with its counterpart."""
    return [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(maps, others, strict=True)]


@pytest.mark.parametrize("family, dim", [("vit_reg4", 64), ("swin", 32), ("birder_vit", 64)])
def test_identify_gives_suggestions_cams_and_the_pre_logit_embedding(loaded, family, dim, photo):
    classifier = loaded[family]
    result = identify(classifier, photo, top_k=3)
    assert len(result.predictions) == 3 and result.cams.shape[0] == 3
    assert result.embedding.shape == (dim,)  # what the classifier reads (the pooled, normed tokens)
    with torch.no_grad():
        logits = classifier.module(classifier.preprocess(photo))[0]
    head = classifier.module.get_submodule(classifier.pre_logits)
    expected = head(torch.from_numpy(result.embedding)[None])[0]
    assert torch.allclose(expected, logits, atol=1e-4)


def test_birder_checkpoint_names_its_classes_size_and_normalisation(loaded):
    classifier = loaded["birder_vit"]
    assert classifier.card.input_size == 64 and classifier.card.mean == (0.5191, 0.5306, 0.4877)
    assert [lab.scientific_name for lab in classifier.labels] == NAMES[:4]
    first = classifier.labels[0]
    assert first.common_name == "Black-capped Chickadee"  # from the committed common-name table (eBird/Clements)
    assert first.lineage.as_dict() == CHICKADEE_RANKS  # every rank, from the class name
    assert first.lineage.note == "agrees with the iNat taxonomy" and first.lineage.taxon_id is not None


def test_birder_rank_heads_answer_per_rank(folder, loaded, photo):
    """Each rank head's answer on the classifier's input, beside the species head's roll-up and top-1 at that rank,
    worked out here from the head files and the species probabilities: the order head says owl where the species
    head says tit (inconsistent); family and genus agree."""
    classifier = loaded["birder_vit"]
    heads = classifier.rank_heads
    assert [h.rank for h in heads.heads] == ["order", "family", "genus"] and heads.input_module == "classifier"
    result = identify(classifier, photo, top_k=2)
    inputs = []  # what the network's classifier reads: (1, D)
    hook = classifier.module.classifier.register_forward_hook(lambda _m, args, _out: inputs.append(args[0][0]))
    try:
        with torch.no_grad():
            species = torch.softmax(classifier.module(classifier.preprocess(photo))[0], 0).tolist()  # NAMES[:4]
    finally:
        hook.remove()
    head = {}  # rank -> the head's probabilities, in its class_to_idx order (HEAD_CLASSES)
    for rank in ("order", "family", "genus"):
        state = torch.load(folder / f"birder_vit-{rank}.head.pt", weights_only=True)["state"]
        head[rank] = torch.softmax(state["weight"] @ inputs[0] + state["bias"], 0).tolist()
    assert int(np.argmax(species)) == 2  # top-1: Parus major
    passerines = species[0] + species[1] + species[2]  # two Poecile and a Parus against one owl
    expected = [
        ("order", "Strigiformes", head["order"][1], "Passeriformes", passerines, "Passeriformes", False),
        ("family", "Paridae", head["family"][0], "Paridae", passerines, "Paridae", True),
        ("genus", "Parus", head["genus"][1], "Parus", species[2], "Parus", True),
    ]
    answers = result_to_json(result)["rank_heads"]
    assert [list(a) for a in answers] == [list(RANK_ANSWER_FIELDS)] * 3
    got = [tuple(a.values()) for a in answers]
    assert [(g[0], g[1], g[3], g[5], g[6]) for g in got] == [(e[0], e[1], e[3], e[5], e[6]) for e in expected]
    assert [g[i] for g in got for i in (2, 4)] == pytest.approx([e[i] for e in expected for i in (2, 4)], abs=1e-6)


def test_a_birder_encoder_with_a_species_head_and_rank_heads(folder, loaded, photo):
    """The BIOSCAN-5M card's recipe: the encoder, its species head as the classifier, a head per higher rank."""
    classifier = loaded["birder_rdnet"]
    assert [lab.scientific_name for lab in classifier.labels] == NAMES  # the species head's class_to_idx
    head = torch.load(folder / "birder_rdnet-species.head.pt", weights_only=True)
    assert torch.equal(classifier.module.classifier.weight, head["state"]["weight"])
    assert classifier.cam_layout.kind == "nchw" and classifier.cam_layer_name == "body"
    result = identify(classifier, photo, top_k=3)
    assert [a.rank for a in result.rank_answers] == ["order", "family", "genus"]


def test_a_384px_birder_checkpoint_is_preprocessed_at_384(tmp_path, photo):
    classifier = load(write_birder_checkpoint(tmp_path, "big", size=96, heads=False))
    assert classifier.card.input_size == 96 and classifier.preprocess(photo).shape == (1, 3, 96, 96)
    assert classifier.cam_layout == FeatureLayout("tokens", 4, (6, 6))
    card = json.loads((tmp_path / "big.json").read_text())
    (tmp_path / "big.json").write_text(json.dumps({**card, "input_size": 128, "mean": [0.5] * 3, "std": [0.5] * 3}))
    stated = load(tmp_path / "big.json")  # the card's own values win over the checkpoint's
    assert stated.preprocess(photo).shape == (1, 3, 128, 128) and stated.card.mean == (0.5, 0.5, 0.5)


def test_crop_pct_shows_the_model_the_central_square(folder, photo, tmp_path):
    card = json.loads((folder / "vit_reg4.json").read_text())
    for name in ("vit_reg4.safetensors", "vit_reg4_labels.txt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    (tmp_path / "vit_reg4.json").write_text(json.dumps({**card, "crop_pct": 0.5}))
    classifier = load(tmp_path / "vit_reg4.json")
    wide = np.zeros((100, 200, 3), np.uint8)
    wide[25:75, 75:125] = 255  # the central 50x50 square: half of the short side
    assert classifier.resize(Image.fromarray(wide)).min() == 255


def _edited(folder, tmp_path, family="vit_reg4", **fields):
    card = json.loads((folder / f"{family}.json").read_text())
    for name in (f"{family}.safetensors", f"{family}_labels.txt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    (tmp_path / f"{family}.json").write_text(json.dumps({**card, **fields}))
    return tmp_path / f"{family}.json"


def test_a_mistyped_cam_layer_lists_the_nearest_names(folder, tmp_path):
    with pytest.raises(
        ValueError, match=r"cam_layer 'blocks\.1\.norm' is not a module .* nearest names .*blocks\.1\.norm1"
    ):
        load(_edited(folder, tmp_path, cam_layer="blocks.1.norm"))


def test_a_cam_layer_without_a_spatial_layout_says_so(folder, tmp_path):
    with pytest.raises(ValueError, match=r"cam_layer 'head': the CAM layer's output is \(1, 5\): no spatial layout"):
        load(_edited(folder, tmp_path, cam_layer="head"))


def test_a_model_whose_output_is_not_batch_by_classes_says_so(folder, tmp_path):
    card = json.loads((folder / "vit_cls_reg4.json").read_text())
    args = {**card["architecture_args"], "global_pool": ""}  # no pooling: one answer per token (same weights)
    with pytest.raises(ValueError, match=r"returns \(2, 21, 5\), not \(2, 5\) logits"):
        load(_edited(folder, tmp_path, "vit_cls_reg4", architecture_args=args))


def test_weights_with_other_keys_name_the_first_few(folder, tmp_path):
    from safetensors.torch import load_file, save_file

    path = _edited(folder, tmp_path)
    state = load_file(str(tmp_path / "vit_reg4.safetensors"))
    state["blocks.0.norm_one.weight"] = state.pop("blocks.0.norm1.weight")
    save_file(state, str(tmp_path / "vit_reg4.safetensors"))
    with pytest.raises(
        ValueError,
        match=r"1 missing keys \(first: blocks\.0\.norm1\.weight\); 1 unexpected keys "
        r"\(first: blocks\.0\.norm_one\.weight\)",
    ):
        load(path)


def test_a_birder_head_of_the_wrong_size_is_refused(folder, tmp_path):
    from families import write_birder_heads

    write_birder_checkpoint(tmp_path, "mismatch", heads=False)
    card = json.loads((tmp_path / "mismatch.json").read_text())
    card["rank_heads"] = write_birder_heads(tmp_path, "mismatch", dim=48)
    (tmp_path / "mismatch.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"take 48-d features, but the input of classifier gives 64-d"):
        load(tmp_path / "mismatch.json")


def test_inat21_class_names_without_birder(folder, tmp_path, photo):
    """A timm model whose label file holds iNat 2021 folder names (labels_format "inat21")."""
    path = _edited(folder, tmp_path, labels_format="inat21")
    (tmp_path / "vit_reg4_labels.txt").write_text("\n".join([*INAT21_CLASSES, INAT21_CLASSES[0][:-1] + "x"]) + "\n")
    classifier = load(path)
    assert classifier.labels[3].lineage.at("order") == "Strigiformes"
    assert classifier.labels[3].common_name == "Burrowing Owl"
    unknown = classifier.labels[4]  # a name today's taxonomy does not have: the lineage still comes from the name
    assert (unknown.scientific_name, unknown.common_name) == ("Poecile atricapillux", "")
    assert unknown.lineage.at("family") == "Paridae" and unknown.lineage.note == (
        "the species is not in the iNat taxonomy under this name; its genus agrees with the taxonomy"
    )
    result = identify(classifier, photo, top_k=5)
    assert [p.lineage["order"] for p in result.predictions].count("Strigiformes") == 1


def test_top_k_above_the_number_of_classes_shows_them_all_and_says_so(loaded, photo):
    result = identify(loaded["birder_vit"], photo, top_k=5)  # the slider's default, on a 4-class model
    assert len(result.predictions) == 4 and result.cams.shape[0] == 4
    assert result.notes[0] == "This model has only 4 classes: all 4 are shown."


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gpu_autocast_agrees_with_fp32(folder, dtype):
    """A ViT with registers and the birder ViT on the GPU: mixed precision gives the fp32 top-1 and the same CAMs."""
    from explorer.cam.gradcam import forward_with_cams

    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)) for _ in range(7)]
    for family in ("vit_cls_reg4", "birder_vit"):
        card = load_model_card(folder / f"{family}.json")
        gpu = load_classifier(card, Settings(checkpoint_dir=folder, device="cuda"), load_taxonomy(NAMES))
        for image in photos:
            x = gpu.preprocess(image)
            runs = {}
            for name, autocast in (("fp32", None), ("mixed", lambda: torch.autocast("cuda", dtype=dtype))):
                logits, indices, cams = forward_with_cams(
                    gpu.module,
                    x,
                    gpu.cam_layer,
                    lambda lg: torch.topk(lg[0].float(), 3).indices.tolist(),
                    autocast,
                    layout=gpu.cam_layout,
                )
                runs[name] = (indices, cams)
            assert runs["mixed"][0][0] == runs["fp32"][0][0]
            for a, b in zip(runs["mixed"][1], runs["fp32"][1]):
                assert a.std() == 0 or np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("family", ["birder_vit", "swin"])
def test_batched_evaluation_matches_identify(loaded, family, tmp_path):
    """explorer-evaluate's model pass (batches of photos) gives identify's logits and embeddings."""
    from explorer.models.batches import run_outputs

    classifier = loaded[family]
    rng = np.random.default_rng(1)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(paths[-1])
    logits, statuses, embeddings = run_outputs(classifier, paths, batch_size=2, workers=0, progress=False, embed=True)
    assert statuses == ["ok"] * 3 and embeddings.shape == (3, result_dim(classifier))
    for path, row, vector in zip(paths, logits, embeddings):
        single = identify(classifier, Image.open(path).convert("RGB"), top_k=1, cam_method=None)
        assert np.allclose(row, single.logits, atol=1e-4) and np.allclose(vector, single.embedding, atol=1e-4)


def result_dim(classifier) -> int:
    return classifier.module.get_submodule(classifier.pre_logits).in_features


def test_the_inspector_explains_an_error_of_a_token_model(loaded, tmp_path):
    """Diagnose's inspector on a ViT: the photo, then Grad-CAMs of the prediction, the truth and 'why A not B'."""
    from explorer.diagnose.metrics import error_rows
    from explorer.diagnose.schema import load_table
    from explorer.services.inspection import inspect_error
    from explorer.services.resources import Resources
    from explorer.settings import PROJECT_ROOT

    table = load_table(PROJECT_ROOT / "assets" / "eval" / "cub100_effnet_head.parquet")
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    row = error_rows(table).iloc[0].to_dict()
    row.update(model="vit_cls_reg4", path="photo.png", pred_class_index=0, true_class_index=2)
    settings = Settings(checkpoint_dir=tmp_path, data_root=tmp_path)
    resources = Resources({"vit_cls_reg4": loaded["vit_cls_reg4"]}, {}, [], settings, {})
    found = inspect_error(resources, row)
    (shown, caption), *cams = found.images
    photo = np.asarray(Image.open(tmp_path / "photo.png"))
    assert caption == "photo" and np.array_equal(shown, photo)
    assert len(cams) == 4  # prediction, truth, contrast, FinerCAM (its token layout through pytorch-grad-cam)
    assert "The bird cannot be located here: mobilenet_v2_1.0_224_quant.tflite not found" in found.html
    classifier = loaded["vit_cls_reg4"]
    x = classifier.preprocess(Image.fromarray(photo))
    reference = reference_cams(classifier.module, x, [0, 2], classifier.cam_layer, layout=classifier.cam_layout)
    for index, (image, _caption) in enumerate(cams):
        assert image.shape == (90, 120, 3) and np.abs(image.astype(int) - photo).mean() > 20  # not the photo
        heat = 2 * image.astype(int) - photo  # the colour-mapped CAM (each overlay is half photo, half CAM)
        assert heat.reshape(-1, 3).std(axis=0).max() > 20  # not one colour: a constant map gives one colour (±1)
        if index < 2:  # the prediction's and the truth's Grad-CAM, as pytorch-grad-cam draws them
            expected = 2 * overlay_cams(photo, reference[index : index + 1])[0].astype(int) - photo
            assert np.corrcoef(heat.ravel(), expected.ravel())[0, 1] > 0.95
