"""Models that differ only in their last linear layer share one forward pass (models.shared_trunk), and
``model="auto"`` costs the distinct backbones it needs: one pass each, the chosen model's answer and maps read from
it, equal to asking that model by name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CORAL, HAVE_CORAL, HAVE_SHARED_DATA, SHARED_REASON, TINY_LABELS, write_tiny_checkpoint
from PIL import Image
from safetensors.torch import save_file

from explorer.identify.answer import IdentifyJob, identify_captured, identify_many
from explorer.identify.scope_check import GATE_MODEL, ScopeRule
from explorer.models.cards import load_model_card
from explorer.models.classifier import load_classifier
from explorer.models.shared_trunk import trunk_groups, trunk_pass
from explorer.photos.images import load_image
from explorer.services.identification import IdentifyRequest, identify_auto, identify_photo
from explorer.services.resources import Resources
from explorer.services.routing import AUTO, Routing, route_many
from explorer.settings import DATA_DIR, Settings
from explorer.taxa.taxonomy import load_taxonomy

HEAD_LABELS = TINY_LABELS[:3]  # a second head on the same trunk, with 3 classes
METHODS = ["gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam", None]


def _head_card(folder: Path, name: str, base: str, seed: int, tensors: dict | None = None, **fields) -> Path:
    """A card on ``base``'s weights file with a head of its own (``head_weights``, as the CUB heads are made)."""
    torch.manual_seed(seed)
    head = tensors or {"classifier.weight": torch.randn(len(HEAD_LABELS), 16), "classifier.bias": torch.randn(3)}
    save_file(head, str(folder / f"{name}_head.safetensors"))
    (folder / f"{name}_labels.txt").write_text("\n".join(HEAD_LABELS) + "\n", encoding="utf-8")
    card = json.loads((folder / f"{base}.json").read_text(encoding="utf-8"))
    card.update(name=name, head_weights=f"{name}_head.safetensors", labels_file=f"{name}_labels.txt", **fields)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(card), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """tiny (the base), head_b (the same trunk, its own 3-class head), and models that must not join them: a
    different normalisation, a head file that also changes a convolution, and a base of other weights."""
    folder = tmp_path_factory.mktemp("family")
    write_tiny_checkpoint(folder, name="tiny", seed=0)
    write_tiny_checkpoint(folder, name="other", seed=1)
    _head_card(folder, "head_b", "tiny", seed=2)
    _head_card(folder, "other_mean", "tiny", seed=3, mean=[0.4, 0.5, 0.5])
    conv = {"features.0.bias": torch.ones(8), "classifier.weight": torch.zeros(3, 16), "classifier.bias": torch.ones(3)}
    _head_card(folder, "conv_too", "tiny", seed=4, tensors=conv)
    taxonomy = load_taxonomy([label.split(" (")[0] for label in TINY_LABELS])
    settings = Settings(checkpoint_dir=folder)
    names = ["tiny", "head_b", "other_mean", "conv_too", "other"]
    return {n: load_classifier(load_model_card(folder / f"{n}.json"), settings, taxonomy) for n in names}


def _photos(count: int, seed: int = 5) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (50 + 7 * i, 64, 3), dtype=np.uint8)) for i in range(count)]


def test_only_models_that_differ_in_their_last_linear_layer_share_a_trunk(family):
    groups = trunk_groups(list(family.values()))
    assert [([m.name for m in g.members], g.head) for g in groups] == [
        (["tiny", "head_b"], "classifier"),
        (["other_mean"], ""),
        (["conv_too"], ""),
        (["other"], ""),
    ]


def test_a_model_whose_logits_are_not_its_head_output_shares_nothing(family, monkeypatch):
    """The probe input catches a model that does more after the layer (here its logits doubled)."""
    scaled = dataclasses.replace(family["head_b"], module=_Doubled(family["head_b"].module))
    assert [[m.name for m in g.members] for g in trunk_groups([family["tiny"], scaled])] == [["tiny"], ["head_b"]]


class _Doubled(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.classifier = inner.classifier
        self.features = inner.features

    def forward(self, x):
        return 2 * self.inner(x)


@pytest.mark.parametrize("method", METHODS)
def test_every_member_answers_from_the_shared_pass_as_from_its_own(family, method):
    """Four photos, one pass of tiny's trunk: head_b's logits, classes, probabilities, maps (a backward pass through
    its own head) and embeddings equal what head_b's own pass gives; so do tiny's."""
    group = trunk_groups([family["tiny"], family["head_b"]])[0]
    photos = _photos(4)
    x = torch.cat([group.leader.preprocess(p) for p in photos])
    done = trunk_pass(group, x, keep_graph=method not in (None, "eigencam"))
    for member in group.members:
        with torch.no_grad():
            np.testing.assert_allclose(
                done.logits[member.name].detach().numpy(), member.module(x).numpy(), atol=1e-6, rtol=0
            )
        jobs = [IdentifyJob(p, top_k=k, threshold=0.5, cam_method=method) for p, k in zip(photos, [3, 1, 2, 3])]
        photos_at = [2, 0]  # two of the four photos, in another order
        captured = Routing([], {member.name: done}).captured(member.name, photos_at)
        got = identify_captured(member, [jobs[b] for b in photos_at], captured)
        want = identify_many(member, [jobs[b] for b in photos_at])
        for g, w in zip(got, want):
            assert [p.class_index for p in g.predictions] == [p.class_index for p in w.predictions]
            np.testing.assert_allclose(
                [p.probability for p in g.predictions], [p.probability for p in w.predictions], atol=1e-6
            )
            assert g.cams.shape == w.cams.shape
            np.testing.assert_allclose(g.cams, w.cams, atol=1e-5)
            np.testing.assert_allclose(g.embedding, w.embedding, atol=1e-6)


def test_auto_routes_tiny_models_from_one_pass_and_answers_as_the_model_named(family, tmp_path):
    """Two scoped models on one trunk: "auto" runs the trunk once for the photo and answers as the chosen one
    does when named (the rule's max-logit threshold set so that only head_b takes the photo)."""
    models = {"tiny": family["tiny"], "head_b": family["head_b"]}
    photo = _photos(1)[0]
    with torch.no_grad():
        logits = {n: m.module(m.preprocess(photo))[0].numpy() for n, m in models.items()}
    tiny_best = float(np.delete(logits["tiny"], 4).max())
    rules = {
        "tiny": ScopeRule("tiny", "bird", "max_logit", threshold=tiny_best + 1.0),
        "head_b": ScopeRule("head_b", "bird", "max_logit", threshold=float(logits["head_b"].max()) - 1.0),
    }
    resources = Resources(models, settings=Settings(checkpoint_dir=tmp_path), scope_rules=rules)
    calls = _count_forwards(models)
    routing = route_many(resources, [photo], "gradcam")
    assert [(r.model, r.check.in_scope) for r in routing.routes] == [("head_b", True)]
    assert calls == {"tiny": 1, "head_b": 0}
    path = tmp_path / "p.png"
    photo.save(path)
    auto = identify_photo(resources, IdentifyRequest(str(path), model=AUTO, top_k=2, cam_method="gradcam")).result
    named = identify_photo(resources, IdentifyRequest(str(path), model="head_b", top_k=2, cam_method="gradcam")).result
    assert auto.model == "head_b" and auto.routed_from == AUTO and auto.routing.startswith("Chose head_b")
    assert [p.class_index for p in auto.predictions] == [p.class_index for p in named.predictions]
    np.testing.assert_allclose(auto.cams, named.cams, atol=1e-5)
    assert auto.scope == named.scope


def _count_forwards(models: dict) -> dict[str, int]:
    """How many times each model's module runs from now on (its root's forward hook)."""
    calls = dict.fromkeys(models, 0)
    for name, model in models.items():
        model.module.register_forward_hook(lambda *_a, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


def _restricted(resources: Resources, scoped: list[str]) -> Resources:
    return dataclasses.replace(resources, scope_rules={n: resources.scope_rules[n] for n in scoped}, batcher=None)


@pytest.mark.skipif(not HAVE_CORAL, reason=SHARED_REASON)
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", None])
def test_auto_runs_each_distinct_backbone_once_and_answers_as_the_model_named(real_resources, method):
    """The shipped models: inat_bird, inat_insect and EfficientNet-Lite0 (the CUB heads' trunk and the gate's) run
    once per photo, the taxonomy-smoothed head and the gate's own module never; the answer, maps, scope verdict and
    rank heads equal the chosen model's when it is named."""
    resources = dataclasses.replace(real_resources, batcher=None)
    identify_photo(resources, IdentifyRequest((CORAL / "owl.jpg").read_bytes(), model=AUTO))  # checks the trunks once
    for photo in ("bird.bmp", "dragonfly.bmp", "cat.bmp"):
        data = (CORAL / photo).read_bytes()
        calls = _count_forwards(resources.classifiers)
        auto = identify_photo(resources, IdentifyRequest(data, model=AUTO, cam_method=method)).result
        expected = {"inat_bird": 1, "inat_insect": 1, "cub100_effnet_head": 1}
        assert calls == {**dict.fromkeys(resources.classifiers, 0), **expected}, photo
        _assert_same(auto, identify_photo(resources, IdentifyRequest(data, model=auto.model, cam_method=method)))
        for model in resources.classifiers.values():
            model.module._forward_hooks.clear()


@pytest.mark.skipif(not (HAVE_CORAL and HAVE_SHARED_DATA), reason=SHARED_REASON)
def test_auto_choosing_a_cub_head_reads_its_answer_and_backward_maps_from_the_gates_pass(real_resources):
    """With only the CUB head's rule (gate + max-logit), a CUB photo goes to it: one EfficientNet-Lite0 pass gives
    the gate's logits, the head's answer and its Grad-CAM (a backward pass through its own ``_fc``)."""
    resources = _restricted(real_resources, ["cub100_effnet_head"])
    photo = next((DATA_DIR / "cub100" / "images").rglob("*.jpg")).read_bytes()
    identify_photo(resources, IdentifyRequest(photo, model=AUTO))  # the first call checks the shared trunk once
    calls = _count_forwards(resources.classifiers)
    auto = identify_photo(resources, IdentifyRequest(photo, model=AUTO, cam_method="gradcam")).result
    assert auto.model == "cub100_effnet_head" and auto.scope.in_scope
    assert calls["cub100_effnet_head"] == 1 and calls[GATE_MODEL] == 0 and sum(calls.values()) == 1
    _assert_same(auto, identify_photo(resources, IdentifyRequest(photo, model=auto.model, cam_method="gradcam")))
    assert auto.rank_answers and auto.rank_answers == _named(resources, photo, auto.model).rank_answers
    for model in resources.classifiers.values():
        model.module._forward_hooks.clear()


def _named(resources, photo, model):
    return identify_photo(resources, IdentifyRequest(photo, model=model, cam_method="gradcam")).result


def _assert_same(auto, named_found) -> None:
    named = named_found.result
    assert auto.model == named.model
    assert [p.class_index for p in auto.predictions] == [p.class_index for p in named.predictions]
    np.testing.assert_allclose(
        [p.probability for p in auto.predictions], [p.probability for p in named.predictions], atol=1e-5
    )
    assert auto.cams.shape == named.cams.shape
    np.testing.assert_allclose(auto.cams, named.cams, atol=1e-4)
    assert auto.scope == named.scope
    np.testing.assert_allclose(auto.embedding, named.embedding, atol=1e-4)


@pytest.mark.skipif(not HAVE_CORAL, reason=SHARED_REASON)
def test_auto_photos_routed_together_to_different_models_get_their_one_at_a_time_answers(real_resources):
    """The batched run of concurrent "auto" calls: a bird, a dragonfly, a cat and an owl in one routing pass go to
    three models; each answer (maps included) equals the photo's own auto call, with its own top-k and place."""
    resources = dataclasses.replace(real_resources, batcher=None)
    photos = ["bird.bmp", "dragonfly.bmp", "cat.bmp", "owl.jpg"]
    places = [{"lat": 43.65, "lon": -79.38, "date": "2021-05-16"}, {}, {}, {"lat": 26.0, "lon": -80.2}]
    requests = [
        IdentifyRequest((CORAL / p).read_bytes(), model=AUTO, top_k=k, cam_method="gradcam", **place)
        for p, k, place in zip(photos, [5, 3, 2, 4], places)
    ]
    settings = resources.settings
    loaded = [load_image(r.photo, settings.max_upload_bytes, settings.max_image_pixels) for r in requests]
    together = identify_auto(resources, list(zip(loaded, requests)))
    assert [result.model for result, _notes in together] == [
        "inat_bird",
        "inat_insect",
        GATE_MODEL,
        "inat_bird",
    ]
    for (result, _notes), request in zip(together, requests):
        alone = identify_photo(resources, request).result
        assert len(result.predictions) == request.top_k
        assert [p.class_index for p in result.predictions] == [p.class_index for p in alone.predictions]
        np.testing.assert_allclose(
            [p.probability for p in result.predictions], [p.probability for p in alone.predictions], atol=1e-4
        )
        np.testing.assert_allclose(result.cams, alone.cams, atol=1e-3)
        assert result.routing == alone.routing
        if alone.scope is None:  # the gate answers a cat: no scope rule of its own
            assert result.scope is None
        else:  # a batched convolution's rounding
            assert result.scope.in_scope == alone.scope.in_scope
            assert result.scope.score == pytest.approx(alone.scope.score, abs=1e-5)
        assert (result.prior is not None and result.prior.used) is (request.place is not None)
