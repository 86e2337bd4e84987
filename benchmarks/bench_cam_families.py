"""Grad-CAM on the model families users train today, at their real sizes (random weights: timing depends on the
architecture, not on the weights): a timm ViT-S/16 with a class token and 4 register tokens, a timm Swin-T, and the
seeds' birder ViT-M/16 with 4 registers. For each, side by side in one process:

- identify (top-5 + the fast Grad-CAM of each) against a bare forward pass (the CAM path's overhead);
- pytorch-grad-cam's GradCAM with the matching reshape_transform, once per class (the obvious way), against identify;
- the worst Pearson correlation, over the top-5 of every sample photo, between our maps and pytorch-grad-cam's.

    python benchmarks/bench_cam_families.py [--repeats 10] [--size 224] [--device cuda]

Last line: cam_families_worst_correlation (required > 0.999).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image

from explorer.cam.gradcam import forward_with_cams, reference_cams, scale_cams
from explorer.cam.layout import choose_cam_layer, derive_layout
from explorer.models.registry import create_model
from explorer.settings import CORAL_DIR

ARCHITECTURES = {
    "timm ViT-S/16 + cls + 4 registers": ("timm:vit_small_patch16_224", {"reg_tokens": 4, "no_embed_class": True}),
    "timm Swin-T": ("timm:swin_tiny_patch4_window7_224", {}),
    "birder ViT-M/16 reg4 (iNat21 seed)": ("birder:vit_reg4_m16_rms_avg", {}),
}
PHOTOS = ["bird.bmp", "owl.jpg", "parrot.jpg", "dragonfly.bmp", "cat.bmp"]


def photos() -> list[Image.Image]:
    found = [Image.open(CORAL_DIR / p).convert("RGB") for p in PHOTOS if (CORAL_DIR / p).is_file()]
    if found:
        return found
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) for _ in range(3)]


def preprocess(image: Image.Image, size: int) -> torch.Tensor:
    from explorer.models.classifier import normalise, resize_rgb

    return normalise(resize_rgb(image, size), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).unsqueeze(0)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; two constant maps (a class whose map ReLU zeroes everywhere) count as 1 when equal, else 0."""
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.allclose(a, b, atol=1e-6) else 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(label: str, architecture: str, args: dict, size: int, repeats: int, images, device: str = "cpu") -> float:
    torch.manual_seed(0)
    if architecture.startswith("timm:"):
        args = {**args, "img_size": size}
    model = create_model(architecture, 1000, args, size).requires_grad_(False).to(device)
    name, _why = choose_cam_layer(model, size)
    layer = model.get_submodule(name)
    layout = derive_layout(model, layer, size)
    top5 = lambda logits: torch.topk(logits[0], 5).indices.tolist()  # noqa: E731
    worst = 1.0
    for image in images:
        x = preprocess(image, size).to(device)

        _logits, indices, cams = forward_with_cams(model, x, layer, top5, layout=layout)
        ours = scale_cams(torch.from_numpy(cams), (size, size))
        theirs = reference_cams(model, x, indices, layer, layout=layout)
        worst = min([worst] + [correlation(a, b) for a, b in zip(ours, theirs)])
    x = preprocess(images[0], size).to(device)
    forward = median_ms(lambda: model(x), repeats)
    fast = median_ms(lambda: forward_with_cams(model, x, layer, top5, layout=layout), repeats)
    slow = median_ms(lambda: reference_cams(model, x, top5(model(x)), layer, layout=layout), max(3, repeats // 3))
    print(
        f"{label:38s} layer {name:24s} {layout.describe():48s} forward {forward:7.1f} ms  top-5 CAMs "
        f"{fast:7.1f} ms ({fast / forward:.2f}x)  pytorch-grad-cam x5 {slow:7.1f} ms ({slow / fast:.1f}x ours)  "
        f"worst r {worst:.6f}",
        flush=True,
    )
    return worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(True)
    images = photos()
    print(
        f"{len(images)} photos, {args.size} px, {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    worst = min(
        measure(label, arch, a, args.size, args.repeats, images, args.device)
        for label, (arch, a) in ARCHITECTURES.items()
    )
    print(f"cam_families_worst_correlation: {worst:.6f}")
    sys.exit(0 if worst > 0.999 else 1)


if __name__ == "__main__":
    main()
