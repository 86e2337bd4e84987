"""Tiny random-weight checkpoints of the model families users train today, written the way their own tools write
them, with a model card each: a timm ViT with register tokens, a timm Swin, a DeiT with a distillation token, and a
birder ViT with register tokens (saved by birder's own ``checkpoint_model``) with birder per-rank linear heads in
the seed model card's format and iNat 2021 class names. Nothing is downloaded; each builds in well under a second
(birder's import takes a few seconds once)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

# iNat 2021 folder names (the numbers are made up; the lineages are the real ones)
INAT21_CLASSES = [
    "03111_Animalia_Chordata_Aves_Passeriformes_Paridae_Poecile_atricapillus",
    "03112_Animalia_Chordata_Aves_Passeriformes_Paridae_Poecile_gambeli",
    "03090_Animalia_Chordata_Aves_Passeriformes_Paridae_Parus_major",
    "03360_Animalia_Chordata_Aves_Strigiformes_Strigidae_Athene_cunicularia",
]
BIRD_LABELS = [
    "Poecile atricapillus (Black-capped Chickadee)",
    "Poecile gambeli (Mountain Chickadee)",
    "Parus major (Great Tit)",
    "Athene cunicularia (Burrowing Owl)",
    "Bubo virginianus (Great Horned Owl)",
]
HEAD_CLASSES = {
    "order": ["Passeriformes", "Strigiformes"],
    "family": ["Paridae", "Strigidae"],
    "genus": ["Athene", "Parus", "Poecile"],
}
TIMM_FAMILIES = {
    # name: (timm architecture, constructor arguments): small enough to run in milliseconds
    "vit_reg4": (
        "vit_little_patch16_reg4_gap_256",
        {"img_size": 64, "depth": 2, "embed_dim": 64, "num_heads": 2},
    ),
    "vit_cls_reg4": (
        "vit_little_patch16_reg4_gap_256",
        {"img_size": 64, "depth": 2, "embed_dim": 64, "num_heads": 2, "class_token": True, "global_pool": "token"},
    ),
    "deit_distilled": (
        "deit_tiny_distilled_patch16_224",
        {"img_size": 64, "depth": 2, "embed_dim": 32, "num_heads": 2},
    ),
    "eva02": (
        "eva02_tiny_patch14_224",
        {"img_size": 56, "depth": 2, "embed_dim": 32, "num_heads": 2},
    ),
    "swin": (
        "swin_tiny_patch4_window7_224",
        {"img_size": 64, "embed_dim": 16, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4},
    ),
}
BIRDER_NETWORK = "vit_reg4_m16_rms_avg"  # the seeds' iNat21 ViT architecture, made tiny through its config
BIRDER_CONFIG = {"num_layers": 2, "hidden_dim": 64, "num_heads": 2, "mlp_dim": 128}
RDNET_CONFIG = {  # the seeds' BIOSCAN-5M RDNet-T, made tiny through its config
    "num_init_features": 16,
    "growth_rates": [16, 24, 32],
    "num_blocks_list": [1, 1, 1],
    "is_downsample_block": [False, True, True],
    "transition_compression_ratio": 0.5,
    "block_type_name": ["Block", "BlockESE", "BlockESE"],
    "drop_path_rate": 0.0,
}


def _card(folder: Path, name: str, **fields) -> Path:
    card = {"name": name, "subject": "bird", "taxon_scope": {"class": "Aves"}, **fields}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(card, indent=1), encoding="utf-8")
    return path


def write_timm_checkpoint(folder: Path, family: str, seed: int = 0, **card_fields) -> Path:
    """A timm model of ``family`` (TIMM_FAMILIES) as safetensors + labels + a card naming no CAM layer."""
    import timm
    from safetensors.torch import save_file

    architecture, args = TIMM_FAMILIES[family]
    torch.manual_seed(seed)
    model = timm.create_model(architecture, num_classes=len(BIRD_LABELS), **args)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / f"{family}.safetensors"))
    (folder / f"{family}_labels.txt").write_text("\n".join(BIRD_LABELS) + "\n", encoding="utf-8")
    return _card(
        folder,
        family,
        architecture=f"timm:{architecture}",
        architecture_args=args,
        weights={"format": "safetensors", "file": f"{family}.safetensors"},
        labels_file=f"{family}_labels.txt",
        input_size=args["img_size"],
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        **card_fields,
    )


def birder_network(num_classes: int, size: int = 64, seed: int = 0) -> nn.Module:
    """A tiny birder ViT with 4 register tokens and a random (non-zero) classifier."""
    from birder.model_registry import registry

    torch.manual_seed(seed)
    net = registry.net_factory(BIRDER_NETWORK, num_classes, 3, config=BIRDER_CONFIG, size=(size, size))
    nn.init.normal_(net.classifier.weight, std=0.5)  # birder starts it at zero: every class would tie
    return net.eval()


def _birder_save(folder: Path, name: str, net: nn.Module, classes: list[str], size: int, config: dict) -> str:
    """``birder.common.fs_ops.checkpoint_model`` into ``folder``; returns the file name it wrote."""
    import birder.conf.settings as birder_settings
    from birder.common import fs_ops

    signature = {"inputs": [{"data_shape": [0, 3, size, size]}], "outputs": [{"data_shape": [0, len(classes)]}]}
    rgb = {"mean": (0.5191, 0.5306, 0.4877), "std": (0.2316, 0.2304, 0.2588)}
    saved_dir, birder_settings.MODELS_DIR = birder_settings.MODELS_DIR, folder
    try:
        to_index = {c: i for i, c in enumerate(classes)}
        fs_ops.checkpoint_model(name, 0, net, signature, to_index, rgb, None, None, None, None, external_config=config)
    finally:
        birder_settings.MODELS_DIR = saved_dir
    return f"{name}_0.pt"


def write_bioscan_style_checkpoint(folder: Path, name: str = "birder_rdnet", **card_fields) -> Path:
    """The BIOSCAN-5M recipe: a birder RDNet encoder, a species linear head as its classifier (``head_weights``) and
    order/family/genus linear heads (``rank_heads``), every head in the seed card's ``.head.pt`` format."""
    from birder.model_registry import registry

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = registry.net_factory("rdnet_t", 2, 3, config=RDNET_CONFIG, size=(64, 64)).eval()
    weights = _birder_save(folder, name, net, ["pretraining_a", "pretraining_b"], 64, RDNET_CONFIG)
    dim = net.classifier.in_features
    species = [label.split(" (")[0] for label in BIRD_LABELS]
    heads = write_birder_heads(folder, name, dim, ranks={**HEAD_CLASSES, "species": species})
    return _card(
        folder,
        name,
        architecture="birder:rdnet_t",
        weights={"format": "birder", "file": weights},
        head_weights=heads.pop("species"),
        rank_heads=heads,
        **card_fields,
    )


def write_birder_checkpoint(
    folder: Path, name: str = "birder_vit", size: int = 64, heads: bool = True, **card_fields
) -> Path:
    """Weights saved by birder's ``checkpoint_model`` (iNat 2021 class names, config, signature, rgb_stats), per-rank
    heads saved as the seed model card loads them, and a card that names only the architecture and the files."""
    folder.mkdir(parents=True, exist_ok=True)
    net = birder_network(len(INAT21_CLASSES), size)
    weights = _birder_save(folder, name, net, INAT21_CLASSES, size, BIRDER_CONFIG)
    fields = {"architecture": f"birder:{BIRDER_NETWORK}", "weights": {"format": "birder", "file": weights}}
    if heads:
        fields["rank_heads"] = write_birder_heads(folder, name, BIRDER_CONFIG["hidden_dim"])
    return _card(folder, name, **fields, **card_fields)


def write_birder_heads(folder: Path, name: str, dim: int, seed: int = 1, ranks=None) -> dict[str, str]:
    """One ``{"class_to_idx", "state"}`` file per rank, as in the BIOSCAN seed card; returns {rank: file name}."""
    generator = torch.Generator().manual_seed(seed)
    files = {}
    for rank, classes in (ranks or HEAD_CLASSES).items():
        head = nn.Linear(dim, len(classes))
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator))
        file = f"{name}-{rank}.head.pt"
        torch.save({"class_to_idx": {c: i for i, c in enumerate(classes)}, "state": head.state_dict()}, folder / file)
        files[rank] = file
    return files
