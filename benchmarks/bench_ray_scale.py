"""The evaluation's model pass on Ray Data at validation-set scale, against a bare batched forward on the same machine.

    python benchmarks/bench_ray_scale.py [--model timm:vit_base_patch16_384] [--size 384] [--photos 100000]
                                         [--batch-size 128] [--out DIR]

A synthetic photo set made on the fly (no files): Ray Data's CPU tasks draw each photo's uint8 pixels from its
number, the engine's actors (``diagnose.ray_engine``: one per GPU, holding it, float16 autocast; or one on the CPU)
normalise them and run the model with random weights (timm's ``pretrained=False``: nothing is downloaded),
keeping each photo's logits' top-1 and its embedding, and the embeddings are written as parquet under ``--out``
(what explorer-evaluate stores beside a table). The baseline, in this process on the same device: the same model's
bare batched forward over tensors already on the device (no drawing, no writing). Both in images/s.

The issue's run: a ViT-B/16 at 384 px over 100,000 photos on the lent GPU machine (an H100 or H200). On a CPU,
try it small: --model timm:resnet18 --size 224 --photos 512 --batch-size 64. Last line: ray_data_vs_bare.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from explorer.diagnose.ray_engine import Predictor, actor_plan
from explorer.models.batches import Transform
from explorer.models.registry import create_model

MEAN = STD = (0.5, 0.5, 0.5)


def pixels(batch: dict, size: int) -> dict:
    """A CPU task: each photo's (size, size, 3) uint8 pixels, drawn from its number (the same photo every run)."""
    ids = np.asarray(batch["id"])
    rng = np.random.default_rng(int(ids[0]))
    return {"id": ids, "pixels": rng.integers(0, 256, (len(ids), size, size, 3), dtype=np.uint8)}


class SyntheticPredictor(Predictor):
    """The engine's actor, fed pixels instead of paths: normalised here, then its forward pass."""

    def __call__(self, batch: dict) -> dict:
        x = torch.from_numpy(np.ascontiguousarray(batch["pixels"])).permute(0, 3, 1, 2).float().div_(255)
        x = (x - 0.5) / 0.5
        found = self.forward(x)
        top1 = [int(np.argmax(row)) for row in found["logits"]]
        return {"id": batch["id"], "top1": top1, "embedding": [e.astype(np.float16) for e in found["embedding"]]}


def bare_images_per_s(module, device: torch.device, size: int, batch_size: int, batches: int) -> float:
    x = torch.randn(batch_size, 3, size, size, device=device)
    autocast = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else contextlib.nullcontext()
    with torch.no_grad(), autocast:
        module(x)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            module(x)
        _sync(device)
    return batches * batch_size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ray_images_per_s(args, module, out: Path) -> tuple[float, int]:
    import ray

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    plan = actor_plan(ray.cluster_resources())
    state = {k: v.cpu() for k, v in module.state_dict().items()}
    transform = Transform(args.size, MEAN, STD)
    start = time.perf_counter()
    dataset = (
        ray.data.range(args.photos)
        .map_batches(pixels, fn_kwargs={"size": args.size}, batch_size=args.batch_size, batch_format="numpy")
        .map_batches(
            SyntheticPredictor,
            fn_constructor_args=(
                (args.model, {}),
                1000,
                state,
                transform,
                ("", None, _pre_logits(module)),
                plan["device"],
            ),
            batch_size=args.batch_size,
            compute=ray.data.ActorPoolStrategy(size=plan["actors"]),
            num_gpus=plan["num_gpus"],
            batch_format="numpy",
        )
    )
    dataset.write_parquet(str(out))
    seconds = time.perf_counter() - start
    rows = ray.data.read_parquet(str(out)).count()
    ray.shutdown()
    return args.photos / seconds, rows


def _pre_logits(module) -> str:
    """The linear classifier whose input is the embedding (timm's ``head``/``fc``/``classifier``)."""
    names = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    return names[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="timm:vit_base_patch16_384")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None, help="where the embeddings go (default: a temporary folder)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = create_model(args.model, 1000, {}, args.size)
    with tempfile.TemporaryDirectory() as folder:
        out = args.out or Path(folder) / "embeddings"
        ray_rate, rows = ray_images_per_s(args, module, out)
        module = module.to(device)
        batches = max(3, min(50, args.photos // args.batch_size // 4))
        bare_rate = bare_images_per_s(module, device, args.size, args.batch_size, batches)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{args.model} at {args.size} px, random weights, batch {args.batch_size}, on {name}")
    print(f"Ray Data: {args.photos:,} synthetic photos, {rows:,} embeddings written: {ray_rate:.1f} images/s")
    print(f"bare batched forward ({batches} batches on {device}): {bare_rate:.1f} images/s")
    print(f"ray_data_vs_bare: {ray_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
