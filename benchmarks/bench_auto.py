"""What "Best model for this photo" (``model="auto"``) costs against the bare forward passes of the distinct backbones
it needs, side by side in one process.

    python benchmarks/bench_auto.py [--photo PATH] [--repeats 40] [--method gradcam]

Timed in turn in every round (medians): ``backbones``, one bare forward pass (no grad) of each distinct trunk among
the models with a scope rule and the ImageNet gate (with the shipped models: inat_bird's and inat_insect's
MobileNetV2s and the EfficientNet-Lite0 that the CUB heads and the gate share), on photos already preprocessed;
``auto``, the service call the page and the API make (``identify_photo`` with ``model="auto"``: the photo decoded,
routed, the chosen model's top-5 and five CAMs, and their overlays, as the page draws them); and ``one_pass_each``,
the way auto worked before: every routed model and the gate on their own passes, then the chosen model again for
its CAMs. Last line: auto_vs_backbones (target <= 1.2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bench_identify import interleaved_medians_ms

from explorer.identify.answer import identify
from explorer.identify.present import cam_overlays
from explorer.identify.scope_check import GATE_MODEL
from explorer.models.shared_trunk import trunk_groups
from explorer.photos.images import load_image
from explorer.services.identification import IdentifyRequest, identify_photo
from explorer.services.resources import load_resources
from explorer.services.routing import AUTO
from explorer.settings import CORAL_DIR, parse_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=CORAL_DIR / "bird.bmp")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--method", default="gradcam")
    args = parser.parse_args()
    resources = load_resources(parse_settings([]))
    models = resources.models()
    routed = [name for name in models if name in resources.scope_rules]
    if any(resources.scope_rules[n].needs_gate for n in routed) and GATE_MODEL in models:
        routed.append(GATE_MODEL)
    groups = trunk_groups([models[name] for name in routed])
    data = args.photo.read_bytes()
    image = load_image(data, resources.settings.max_upload_bytes, resources.settings.max_image_pixels).image
    inputs = [(group.leader, group.leader.preprocess(image)) for group in groups]
    request = IdentifyRequest(data, model=AUTO, top_k=5, cam_method=args.method)
    chosen = identify_photo(resources, request).result.model

    def backbones():
        with torch.no_grad():
            for classifier, x in inputs:
                with classifier.autocast():
                    classifier.module(x)

    def auto():
        found = identify_photo(resources, request)
        cam_overlays(found.photo.image, found.result)

    def one_pass_each():  # before: each routed model and the gate alone, then the chosen model again
        loaded = load_image(data, resources.settings.max_upload_bytes, resources.settings.max_image_pixels).image
        with torch.no_grad():
            for name in routed:
                models[name].module(models[name].preprocess(loaded))
        cam_overlays(loaded, identify(models[chosen], loaded, top_k=5, cam_method=args.method))

    print(
        f"photo {args.photo.name} {image.size}, CAM method {args.method}, answered by {chosen}, "
        f"torch threads {torch.get_num_threads()}, median of {args.repeats} rounds"
    )
    print(
        "distinct backbones: " + "; ".join(f"{g.leader.name} ({', '.join(m.name for m in g.members)})" for g in groups)
    )
    ms = interleaved_medians_ms({"backbones": backbones, "auto": auto, "one_pass_each": one_pass_each}, args.repeats)
    for name, value in ms.items():
        print(f"{name}_ms: {value:.1f}")
    print(f"one_pass_each_vs_backbones: {ms['one_pass_each'] / ms['backbones']:.2f}")
    print(f"auto_vs_backbones: {ms['auto'] / ms['backbones']:.2f}")


if __name__ == "__main__":
    main()
