"""Settings: the frozen configuration of the app and the tools, built once from CLI flags and the environment.

The app (``app.py``) and every console script (``explorer.tools``) build their Settings here, so nothing in the
package imports the entry script. Default locations are derived in one place: the project folder (the one holding
``pyproject.toml`` above this package) and the shared data folder beside it (``EXPLORER_SHARED_DIR`` overrides).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


def _project_root() -> Path:
    """The checkout this package lives in (the first folder above it with a pyproject.toml); EXPLORER_ROOT
    overrides, and the current folder is the fallback for an installed, non-editable copy."""
    if os.environ.get("EXPLORER_ROOT"):
        return Path(os.environ["EXPLORER_ROOT"]).resolve()
    here = Path(__file__).resolve()
    return next((p for p in here.parents if (p / "pyproject.toml").is_file()), Path.cwd())


PROJECT_ROOT = _project_root()
SHARED_DIR = Path(os.environ.get("EXPLORER_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
CORAL_DIR = SHARED_DIR / "models" / "coral"
DATA_DIR = SHARED_DIR / "data"
TAXONOMY_SUPPLEMENT = DATA_DIR / "taxonomy" / "coral_inat_bird_insect_taxonomy.tsv"
SHIPPED_CHECKPOINTS = PROJECT_ROOT / "checkpoints"  # the model cards that come with the checkout
SHIPPED_TABLES = PROJECT_ROOT / "assets" / "eval"  # the evaluation tables that come with it


@dataclass(frozen=True)
class Settings:
    """Everything the app and the tools need to know about their environment."""

    checkpoint_dir: Path  # model cards; a card here wins a name clash; the tools write here
    model_dirs: tuple[Path, ...] = ()  # extra folders where card files (weights, labels) are looked up
    cache_dir: Path | None = None  # converted weights; defaults to .cache in the first card folder
    examples_dir: Path | None = None
    eval_dir: Path | None = None  # evaluation tables (*.parquet) for the dashboard; its tables win a name clash
    # more folders of cards and of tables, loaded before the two above (the CLI: the shipped ones, and earlier flags)
    base_checkpoint_dirs: tuple[Path, ...] = ()
    base_eval_dirs: tuple[Path, ...] = ()
    data_root: Path | None = None  # where the photos named in evaluation tables live
    taxonomy_supplement: Path | None = None  # optional TSV filling names the iNat taxonomy lacks
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    default_model: str | None = None
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    max_upload_bytes: int = 25 * MB
    temp_ttl_s: int = 3600  # uploads and rendered images older than this are deleted (checked every ttl/2, >= 10 s)
    max_image_pixels: int = 60_000_000  # ~ a 60 MP camera; beyond that we refuse before decoding
    min_image_side: int = 16
    # model calls served at once, each with its own copy of the models (services.workers)
    model_workers: int = 1
    # concurrent calls of one model gathered into one forward pass (services.batching): at most this many; 1: none
    max_batch: int = 8
    batch_wait_ms: float = 0.0  # how long a batch's first call waits for others when the batch is not full
    # the identify calls on Ray Serve replicas (services.model_tier): a local Ray, or the cluster at ray_address
    ray_serve: bool = False
    ray_address: str | None = None
    tier_replicas: int = 2

    @property
    def card_dirs(self) -> tuple[Path, ...]:
        """Every folder of model cards, in loading order (a later folder's card wins a name clash)."""
        return tuple(dict.fromkeys([*self.base_checkpoint_dirs, self.checkpoint_dir]))

    @property
    def eval_dirs(self) -> tuple[Path, ...]:
        """Every folder of evaluation tables, in loading order (a later folder's table wins a name clash)."""
        return tuple(dict.fromkeys(p for p in (*self.base_eval_dirs, self.eval_dir) if p is not None))

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.card_dirs[0] / ".cache"

    @property
    def search_dirs(self) -> tuple[Path, ...]:
        """Folders where a card's relative file names are resolved, in order."""
        return (self.checkpoint_dir, self.resolved_cache_dir, *self.model_dirs)


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Where models and data are found: shared by the app and every tool."""
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        action="append",
        default=None,
        help="a folder of model cards, added to the shipped checkpoints/; repeatable (a card in a later "
        "folder replaces one of the same name, and the Models tab says so); tools write into the last one",
    )
    parser.add_argument(
        "--no-shipped",
        action="store_true",
        help="leave out the shipped model cards (and, for the app, the shipped evaluation tables): only the "
        "folders given",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        action="append",
        default=None,
        help=f"extra folder where card files (weights, labels) are found; repeatable (default: {CORAL_DIR} "
        "when it exists)",
    )
    parser.add_argument(
        "--data-root", type=Path, default=DATA_DIR, help="folder the evaluation tables' photo paths are relative to"
    )
    parser.add_argument(
        "--device",
        default=os.environ.get("EXPLORER_DEVICE", "auto"),
        help="auto (CUDA when there is one), cpu or cuda (default auto)",
    )
    return parser


def add_server_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """What only the app needs: where it listens, what it shows, its limits."""
    parser.add_argument(
        "--host",
        default=os.environ.get("EXPLORER_HOST", "127.0.0.1"),
        help="interface to bind (default 127.0.0.1; 0.0.0.0 to serve the network)",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("EXPLORER_PORT", 7860)), help="port to serve (default 7860)"
    )
    parser.add_argument("--model", default=None, help="default model (a card name in the checkpoint dir)")
    parser.add_argument("--examples-dir", type=Path, default=CORAL_DIR, help="folder of example photos")
    parser.add_argument(
        "--eval-dir",
        type=Path,
        action="append",
        default=None,
        help="a folder of evaluation tables (*.parquet) for the dashboard, added to the shipped assets/eval/; "
        "repeatable (a table in a later folder replaces one of the same name)",
    )
    parser.add_argument("--max-upload-mb", type=float, default=25.0, help="upload size limit in MB (default 25)")
    parser.add_argument(
        "--temp-ttl",
        type=int,
        default=3600,
        help="seconds an upload or a rendered image is kept in Gradio's temporary folder before it is deleted "
        "(default 3600)",
    )
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link (off by default)")
    parser.add_argument(
        "--model-workers",
        type=positive_int,
        default=os.environ.get("EXPLORER_MODEL_WORKERS", "1"),
        help="model calls served at once, each with its own copy of the models and cores/N torch threads (default "
        "1: one call (or batch) at a time on every core; more: higher throughput under load: for many users on a "
        "CPU, 2 served 1.7x the calls/s of 1 on 2 cores, see docs/performance/holding-up.md)",
    )
    return add_batch_arguments(parser)


def add_batch_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The server's batching flags (services.batching)."""
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        default=os.environ.get("EXPLORER_MAX_BATCH", "8"),
        help="concurrent calls of one model gathered into one forward pass, at most this many (default 8; 1: each "
        "call alone). A batch is what arrives while the previous one runs: a lone call waits for nothing",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=non_negative_float,
        default=os.environ.get("EXPLORER_BATCH_WAIT_MS", "0"),
        help="milliseconds a batch's first call waits for others when the batch is not full (default 0; a few on "
        "a GPU, where a fuller batch costs almost nothing more)",
    )
    return add_tier_arguments(parser)


def add_tier_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The model tier's flags (services.model_tier)."""
    parser.add_argument(
        "--ray-serve",
        action="store_true",
        help="run the identify calls on Ray Serve replicas (a local Ray started here unless --ray-address); this "
        "process serves the page",
    )
    parser.add_argument(
        "--ray-address",
        default=os.environ.get("EXPLORER_RAY_ADDRESS") or None,
        help="an existing Ray cluster for the replicas (HEAD:6379, or 'auto' on one of its machines); implies "
        "--ray-serve",
    )
    parser.add_argument(
        "--tier-replicas",
        type=positive_int,
        default=os.environ.get("EXPLORER_TIER_REPLICAS", "2"),
        help="replicas of the models on Ray Serve, each with its own copy (default 2)",
    )
    return parser


def non_negative_float(text: str) -> float:
    """A number >= 0 (argparse type: a clear message for anything else)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type: a clear message for anything else)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _folders(shipped: Path, given: list[Path] | None, no_shipped: bool, flag: str) -> tuple[Path, tuple[Path, ...]]:
    """(the last folder, the ones before it): the shipped folder first unless left out, then the folders given."""
    folders = [*([] if no_shipped else [shipped]), *(given or [])]
    if not folders:
        raise ValueError(f"--no-shipped leaves no {flag}: give at least one")
    return folders[-1], tuple(folders[:-1])


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags; a tool's parser has only the model flags, and the server's keep their defaults.
    The folders given add to the shipped ones (``--no-shipped`` leaves those out)."""
    model_dirs = args.model_dir if args.model_dir is not None else [CORAL_DIR]
    no_shipped = getattr(args, "no_shipped", False)
    checkpoint_dir, base_checkpoint_dirs = _folders(
        SHIPPED_CHECKPOINTS, args.checkpoint_dir, no_shipped, "--checkpoint-dir"
    )
    fields = {
        "checkpoint_dir": checkpoint_dir,
        "base_checkpoint_dirs": base_checkpoint_dirs,
        "model_dirs": tuple(p for p in model_dirs if p.is_dir()),
        "data_root": args.data_root,
        "device": args.device,
        "taxonomy_supplement": TAXONOMY_SUPPLEMENT if TAXONOMY_SUPPLEMENT.is_file() else None,
    }
    if hasattr(args, "host"):  # the app's own flags (add_server_arguments)
        tables = [*([] if no_shipped else [SHIPPED_TABLES]), *(args.eval_dir or [])]
        fields.update(
            host=args.host,
            port=args.port,
            share=args.share,
            default_model=args.model,
            max_upload_bytes=int(args.max_upload_mb * MB),
            temp_ttl_s=args.temp_ttl,
            examples_dir=args.examples_dir,
            eval_dir=tables[-1] if tables else None,
            base_eval_dirs=tuple(tables[:-1]),
            model_workers=args.model_workers,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
            ray_serve=args.ray_serve or bool(args.ray_address),
            ray_address=args.ray_address,
            tier_replicas=args.tier_replicas,
        )
    return Settings(**fields)


def parse_settings(argv: list[str] | None = None) -> Settings:
    """The app's flags (with environment fallbacks) -> Settings."""
    parser = argparse.ArgumentParser(description="Species ID explorer: identify, explain and diagnose.")
    return settings_from_args(add_server_arguments(add_model_arguments(parser)).parse_args(argv))
