"""Species ID explorer: python app.py [--host 127.0.0.1] [--port 7860] [--model NAME] ..."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from explorer.config import MB, Settings

ROOT = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("EXPLORER_SHARED_DIR", ROOT.parent / "shared"))


def parse_settings(argv: list[str] | None = None) -> Settings:
    """CLI flags (with environment fallbacks) -> Settings."""
    parser = argparse.ArgumentParser(description="Species ID explorer: identify, explain and diagnose.")
    parser.add_argument(
        "--host",
        default=os.environ.get("EXPLORER_HOST", "127.0.0.1"),
        help="interface to bind (default 127.0.0.1; 0.0.0.0 to serve the network)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("EXPLORER_PORT", 7860)))
    parser.add_argument("--model", default=None, help="default model (a card name in the checkpoint dir)")
    parser.add_argument("--checkpoint-dir", type=Path, default=ROOT / "checkpoints", help="folder of model cards")
    parser.add_argument(
        "--model-dir",
        type=Path,
        action="append",
        default=None,
        help="extra folder where card files (weights, labels) are found; repeatable "
        f"(default: {SHARED / 'models' / 'coral'} when it exists)",
    )
    parser.add_argument(
        "--examples-dir", type=Path, default=SHARED / "models" / "coral", help="folder of example photos"
    )
    parser.add_argument(
        "--eval-dir",
        type=Path,
        default=ROOT / "assets" / "eval",
        help="evaluation tables (*.parquet) shown in the dashboard",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=SHARED / "data",
        help="folder the evaluation tables' photo paths are relative to",
    )
    parser.add_argument("--device", default=os.environ.get("EXPLORER_DEVICE", "auto"), help="auto, cpu or cuda")
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="upload size limit in MB")
    parser.add_argument(
        "--temp-ttl",
        type=int,
        default=3600,
        help="seconds an upload or a rendered image is kept in Gradio's temporary folder before it is deleted",
    )
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link (off by default)")
    args = parser.parse_args(argv)
    model_dirs = args.model_dir if args.model_dir is not None else [SHARED / "models" / "coral"]
    supplement = SHARED / "data" / "taxonomy" / "coral_inat_bird_insect_taxonomy.tsv"
    return Settings(
        checkpoint_dir=args.checkpoint_dir,
        model_dirs=tuple(p for p in model_dirs if p.is_dir()),
        examples_dir=args.examples_dir,
        host=args.host,
        port=args.port,
        share=args.share,
        default_model=args.model,
        device=args.device,
        max_upload_bytes=int(args.max_upload_mb * MB),
        temp_ttl_s=args.temp_ttl,
        taxonomy_supplement=supplement if supplement.is_file() else None,
        eval_dir=args.eval_dir,
        data_root=args.data_root,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_settings(argv)
    from explorer.resources import load_resources
    from explorer.ui import build_demo, launch, stage_examples

    resources = load_resources(settings)
    resources.warm_maps()
    stage_examples(resources, settings.resolved_cache_dir / "examples")
    launch(build_demo(resources), resources)


if __name__ == "__main__":
    main()
