"""Latency of one identify call (top-5 + 5 Grad-CAM overlays) against a bare forward pass, and against
pytorch-grad-cam used the obvious way (one GradCAM call per class), side by side in one process.

    python benchmarks/bench_identify.py [--model inat_bird] [--photo PATH] [--repeats 30]

Then one row per CAM method of the menu: identify (top-5 + overlays) with that method against the same with the fast
Grad-CAM (target: every method <= 3x). Last two lines: naive_vs_identify and identify_vs_forward (target <= 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from explorer.cam.gradcam import FAST_METHOD, METHODS, reference_cams
from explorer.identify.answer import identify
from explorer.identify.present import cam_overlays
from explorer.photos.images import load_image
from explorer.services.resources import load_resources
from explorer.settings import CORAL_DIR, parse_settings


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def interleaved_medians_ms(fns: dict, repeats: int, warmup: int = 5) -> dict:
    """Median ms of each function, run in turn in every round so that drift hits them all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_timed(fn))
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--photo", type=Path, default=CORAL_DIR / "bird.bmp")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    resources = load_resources(parse_settings([]))
    classifier = resources.get(args.model or resources.default_model)
    settings = resources.settings
    loaded = load_image(args.photo, settings.max_upload_bytes, settings.max_image_pixels)
    image = loaded.image
    x = classifier.preprocess(image)
    model = classifier.module

    def bare_forward():
        with torch.no_grad(), classifier.autocast():
            model(x)

    def full_identify():  # preprocessing, forward, top-5, roll-up, 5 CAMs and 5 overlays
        result = identify(classifier, image, top_k=5)
        cam_overlays(image, result)

    top5 = [p.class_index for p in identify(classifier, image, top_k=5).predictions]

    def naive():  # what most scripts do: one pytorch-grad-cam GradCAM call per class
        reference_cams(model, x, top5, classifier.cam_layer)
        cam_overlays(image, identify(classifier, image, top_k=5))  # same overlays, for a fair comparison

    print(
        f"model {classifier.name} on {classifier.device}, photo {args.photo.name} {image.size}, "
        f"torch threads {torch.get_num_threads()}, median of {args.repeats}"
    )
    fast = interleaved_medians_ms({"forward": bare_forward, "identify": full_identify}, args.repeats)
    forward_ms, identify_ms = fast["forward"], fast["identify"]
    naive_ms = interleaved_medians_ms({"naive": naive}, max(5, args.repeats // 5), warmup=1)["naive"]
    print(f"bare_forward_ms: {forward_ms:.1f}")
    print(f"identify_top5_with_overlays_ms: {identify_ms:.1f}")
    print(f"naive_pytorch_grad_cam_top5_ms: {naive_ms:.1f}")
    per_method = {
        m: lambda m=m: cam_overlays(image, identify(classifier, image, top_k=5, cam_method=m)) for m in METHODS
    }
    method_ms = interleaved_medians_ms(per_method, max(10, args.repeats // 2), warmup=2)
    for method, ms in method_ms.items():
        print(f"method {method:28s} {ms:7.1f} ms  {ms / method_ms[FAST_METHOD]:.2f}x the fast Grad-CAM")
    print(f"slowest_method_vs_gradcam: {max(method_ms.values()) / method_ms[FAST_METHOD]:.2f}")
    print(f"naive_vs_identify: {naive_ms / identify_ms:.2f}")
    print(f"identify_vs_forward: {identify_ms / forward_ms:.2f}")


if __name__ == "__main__":
    main()
