"""The fast top-k Grad-CAM must equal pytorch-grad-cam's GradCAM for the same layer and classes."""

import numpy as np
import pytest
import torch
from conftest import CORAL, SAMPLE_PHOTOS

from explorer.cam.gradcam import (
    REFERENCE_METHODS,
    compute_cams,
    forward_with_cams,
    overlay_cam,
    reference_cams,
    scale_cams,
)


def correlations(fast, ref):
    """Pearson r per map; a flat map (all zero after the ReLU) counts as 1 only if both are flat and equal."""
    out = []
    for a, b in zip(fast, ref):
        if a.std() < 1e-6 or b.std() < 1e-6:
            out.append(1.0 if np.allclose(a, b, atol=1e-3) else 0.0)
        else:
            out.append(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]))
    return out


def test_tiny_model_matches_reference(tiny_classifier, photo_rgb):
    x = tiny_classifier.preprocess(photo_rgb)
    fast = compute_cams(tiny_classifier.module, x, [0, 2, 3], tiny_classifier.cam_layer)
    ref = reference_cams(tiny_classifier.module, x, [0, 2, 3], tiny_classifier.cam_layer)
    assert fast.shape == (3, 64, 64) and fast.dtype == np.float32
    assert fast.min() >= 0 and fast.max() <= 1
    assert min(correlations(fast, ref)) > 0.999
    assert np.abs(fast - ref).max() < 1e-3


def test_select_picks_from_same_forward(tiny_classifier, photo_rgb):
    x = tiny_classifier.preprocess(photo_rgb)
    logits, indices, cams = forward_with_cams(
        tiny_classifier.module, x, tiny_classifier.cam_layer, lambda z: torch.topk(z[0], 2).indices.tolist()
    )
    assert indices == torch.topk(logits[0], 2).indices.tolist() and cams.shape[0] == 2
    assert not any(p.requires_grad for p in tiny_classifier.module.parameters())


def test_batch_of_two_refused(tiny_classifier):
    with pytest.raises(ValueError, match=r"must be \(1, C, H, W\)"):
        compute_cams(tiny_classifier.module, torch.zeros(2, 3, 64, 64), [0], tiny_classifier.cam_layer)


def test_unknown_method_named(tiny_classifier):
    with pytest.raises(ValueError, match="unknown CAM method 'magic'"):
        reference_cams(tiny_classifier.module, torch.zeros(1, 3, 64, 64), [0], tiny_classifier.cam_layer, "magic")


def test_other_methods_are_pytorch_grad_cams_own_maps_and_not_flat(tiny_classifier, photo_rgb):
    """Each reference method is pytorch-grad-cam's class called directly for the same layer and class (to 1e-6); its
    map spans 0..1 after pytorch-grad-cam's scaling (a flat or all-zero map does not), and our batched map of the same
    method equals it to 1e-4."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = tiny_classifier.preprocess(photo_rgb)
    layer = tiny_classifier.cam_layer
    for method in ("gradcam++", "eigencam", "layercam"):
        name = f"{method} (pytorch-grad-cam)"
        maps = reference_cams(tiny_classifier.module, x, [1], layer, name)
        assert maps.shape == (1, 64, 64)
        assert maps.min() == 0.0 and maps.max() == pytest.approx(1.0, abs=1e-6), method  # not constant
        cam_class = getattr(pytorch_grad_cam, REFERENCE_METHODS[name])
        with cam_class(model=tiny_classifier.module, target_layers=[layer]) as cam:
            direct = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(1)])
        assert np.abs(maps - direct).max() <= 1e-6, method
        _, _, batched = forward_with_cams(tiny_classifier.module, x, layer, lambda _z: [1], method=method)
        assert np.abs(scale_cams(torch.from_numpy(batched), (64, 64)) - maps).max() <= 1e-4, method


def batched_vs_reference(module, x, layer, classes, head=None, layout=None) -> dict[str, float]:
    """Worst correlation, per method, between our batched maps (one forward, one backward for all classes) and
    pytorch-grad-cam's class of that method called once per class; every map scaled to the input like theirs."""
    from explorer.cam.gradcam import BATCHED_METHODS

    worst = {}
    for method in BATCHED_METHODS:
        _, _, maps = forward_with_cams(module, x, layer, lambda _z: classes, head=head, layout=layout, method=method)
        ours = scale_cams(torch.from_numpy(maps), tuple(x.shape[-2:]))
        reference = f"{method} (pytorch-grad-cam)"
        theirs = reference_cams(module, x, classes, layer, reference, layout)
        assert ours.shape == theirs.shape == (len(classes), *x.shape[-2:])
        worst[method] = min(correlations(ours, theirs))
    return worst


def test_every_batched_method_equals_pytorch_grad_cam(tiny_classifier, photo_rgb):
    x = tiny_classifier.preprocess(photo_rgb)
    worst = batched_vs_reference(tiny_classifier.module, x, tiny_classifier.cam_layer, [0, 1, 2, 3])
    assert min(worst.values()) > 0.999, worst


def test_every_batched_method_equals_pytorch_grad_cam_backward_free(tiny_classifier, photo_rgb):
    """With the linear head declared, no backward pass at all: d(logit_c)/dA = W_c / (h w)."""
    x = tiny_classifier.preprocess(photo_rgb)
    head = tiny_classifier.module.classifier
    worst = batched_vs_reference(tiny_classifier.module, x, tiny_classifier.cam_layer, [0, 1, 2, 3], head=head)
    assert min(worst.values()) > 0.999, worst


def test_eigencam_is_computed_once_and_the_same_for_every_class(tiny_classifier, photo_rgb):
    x = tiny_classifier.preprocess(photo_rgb)
    _, _, maps = forward_with_cams(
        tiny_classifier.module, x, tiny_classifier.cam_layer, lambda _z: [0, 1, 2], method="eigencam"
    )
    assert maps.shape[0] == 3 and np.array_equal(maps[0], maps[1]) and np.array_equal(maps[0], maps[2])


def test_overlay_keeps_image_size_and_blends_the_map_over_the_photo():
    """A map of 0 on its left half and 1 on its right, over a photo of another size: the overlay is the photo's size,
    the exact 50/50 blend with JET's dark blue where the map is 0 and with its dark red where it is 1."""
    from explorer.cam.gradcam import _jet_rgb_lut

    photo = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    photo[0, 0] = (100, 50, 200)
    cam = np.zeros((64, 64), np.float32)
    cam[:, 32:] = 1.0  # resized to 50 wide: columns 0..23 stay exactly 0, columns 26..49 exactly 1
    out = overlay_cam(photo, cam)
    assert out.shape == (30, 50, 3) and out.dtype == np.uint8
    jet = _jet_rgb_lut()[:, 0, :].astype(int)
    assert (jet[0].tolist(), jet[255].tolist()) == ([0, 0, 128], [128, 0, 0])
    assert out[0, 0].tolist() == [50, 25, 164]  # (100, 50, 200) and (0, 0, 128), half each
    low, high = photo[:, :24].astype(int), photo[:, 26:].astype(int)
    assert np.abs(out[:, :24] - (low + jet[0]) / 2).max() <= 0.5  # the photo kept at half weight
    assert np.abs(out[:, 26:] - (high + jet[255]) / 2).max() <= 0.5  # rounding only
    assert (out[:, 26:] != photo[:, 26:]).any(axis=-1).all()  # every pixel under the high map changed


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_models_on_real_photos_match_pytorch_grad_cam(real_resources):
    from PIL import Image

    worst = 1.0
    for classifier in real_resources.classifiers.values():  # bird/insect: linear-head path; ImageNet: autograd
        for name in SAMPLE_PHOTOS[:4]:
            x = classifier.preprocess(Image.open(CORAL / name).convert("RGB"))
            top5 = torch.topk(torch.from_numpy(classifier.predict_probs(x)[0]), 5).indices.tolist()
            fast = compute_cams(classifier.module, x, top5, classifier.cam_layer)
            _, _, maps = forward_with_cams(
                classifier.module, x, classifier.cam_layer, lambda _z, t=top5: t, head=classifier.cam_head
            )  # the path identify takes
            served = scale_cams(torch.from_numpy(maps), (224, 224))
            ref = reference_cams(classifier.module, x, top5, classifier.cam_layer)
            worst = min(worst, *correlations(fast, ref), *correlations(served, ref))
            if name in SAMPLE_PHOTOS[:2]:  # every method (pytorch-grad-cam's are slow: 6 x 5 calls a photo)
                every = batched_vs_reference(classifier.module, x, classifier.cam_layer, top5, classifier.cam_head)
                worst = min(worst, *every.values())
    print(f"every batched method vs pytorch-grad-cam: worst correlation {worst:.6f}")
    assert worst > 0.999


def test_overlays_look_like_pytorch_grad_cam():
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from explorer.cam.gradcam import overlay_cams

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    cams = rng.random((3, 40, 60)).astype(np.float32)
    ours = overlay_cams(image, cams)
    assert len(ours) == 3
    for cam, overlay in zip(cams, ours):
        reference = show_cam_on_image(image.astype(np.float32) / 255, cam, use_rgb=True)
        # same colour map and blend; pytorch-grad-cam also rescales by the brightest pixel, hence the tolerance
        assert np.corrcoef(overlay.ravel().astype(float), reference.ravel().astype(float))[0, 1] > 0.99


def test_overlay_colours_are_exact_and_maps_outside_zero_to_one_are_clipped():
    from explorer.cam.gradcam import _jet_rgb_lut, overlay_cams

    image = np.full((2, 2, 3), 100, np.uint8)
    cams = np.array([[[-0.5, 0.0], [1.0, 1.5]], [[0.5, 0.5], [0.5, 0.5]]], np.float32)  # 2x2: no interpolation
    low, half = overlay_cams(image, cams)
    jet = _jet_rgb_lut()[:, 0, :].astype(int)
    expected = {(0, 0): 0, (0, 1): 0, (1, 0): 255, (1, 1): 255}  # -0.5 counts as 0, 1.5 as 1
    for (y, x), level in expected.items():
        assert np.abs(low[y, x].astype(int) - (jet[level] + 100) / 2).max() <= 1, (y, x)
    assert np.abs(half[0, 0].astype(int) - (jet[128] + 100) / 2).max() <= 1  # 0.5 -> 127.5 rounds to 128


def test_linear_head_path_equals_reference(tmp_path, photo_rgb):
    """cam_head: no backward pass at all, same maps as pytorch-grad-cam."""
    from conftest import write_tiny_checkpoint

    from explorer.models.cards import load_model_card
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings

    card = write_tiny_checkpoint(tmp_path, cam_head="classifier")
    classifier = load_classifier(load_model_card(card), Settings(checkpoint_dir=tmp_path))
    x = classifier.preprocess(photo_rgb)
    _, indices, maps = forward_with_cams(
        classifier.module, x, classifier.cam_layer, lambda z: [0, 1, 2, 3], head=classifier.cam_head
    )
    from explorer.cam.gradcam import scale_cams

    fast = scale_cams(torch.from_numpy(maps), (64, 64))
    ref = reference_cams(classifier.module, x, indices, classifier.cam_layer)
    assert min(correlations(fast, ref)) > 0.999 and np.abs(fast - ref).max() < 1e-3


def test_wrong_cam_head_fails_at_load(tmp_path):
    from conftest import write_tiny_checkpoint

    from explorer.models.cards import load_model_card
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings

    card = write_tiny_checkpoint(tmp_path, cam_layer="features.0", cam_head="classifier")
    with pytest.raises(ValueError, match="cam_head"):
        load_classifier(load_model_card(card), Settings(checkpoint_dir=tmp_path))


def test_why_a_and_not_b_is_finercam_against_one_class(tiny_classifier, photo_rgb):
    """pytorch-grad-cam's FinerCAM against one class (alpha 1: the weight cancels) is the Grad-CAM of logit a −
    logit b: our "why a and not b" upsampled as the library does; finer_cam is the library's default (the nearest
    rivals), a map in [0, 1] at the input's size."""
    from pytorch_grad_cam import FinerCAM
    from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

    from explorer.cam.gradcam import contrastive_cams, finer_cam

    model, layer = tiny_classifier.module, tiny_classifier.cam_layer
    x = tiny_classifier.preprocess(photo_rgb)
    ours = scale_cams(torch.from_numpy(contrastive_cams(model, x, layer, 0, 2)[2:]), (64, 64))[0]
    with FinerCAM(model=model, target_layers=[layer]) as cam:
        theirs = cam(input_tensor=x.clone().requires_grad_(True), targets=[FinerWeightedTarget(0, [2], 1.0)])[0]
    assert min(correlations([ours], [theirs])) > 0.999 and np.abs(ours - theirs).max() < 1e-3
    rivals = finer_cam(model, x, layer, 0)
    assert rivals.shape == (64, 64) and rivals.dtype == np.float32 and 0 <= rivals.min() and rivals.max() <= 1
