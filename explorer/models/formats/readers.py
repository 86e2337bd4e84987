"""The weights formats a model card may name (``weights.format``), each with its reader.

A new format is a module in ``formats/`` with a reader (``loaded_weights.WeightReader``) and one line here.
"""

from __future__ import annotations

from explorer.models.formats.birder import BirderReader
from explorer.models.formats.loaded_weights import WeightReader
from explorer.models.formats.package_file import PackageFileReader
from explorer.models.formats.state_dict import StateDictReader
from explorer.models.formats.tflite import TfliteReader

READERS: dict[str, WeightReader] = {
    "safetensors": StateDictReader(),  # the file's suffix decides how a state dict is read, as for "state_dict"
    "state_dict": StateDictReader(),
    "tflite": TfliteReader(),
    "package_file": PackageFileReader(),
    "birder": BirderReader(),
}


def weight_formats() -> tuple[str, ...]:
    """The format names a card may give, in registration order."""
    return tuple(READERS)


def reader_for(weights_format: str) -> WeightReader:
    """The reader of a format; ValueError listing the known formats."""
    if weights_format not in READERS:
        raise ValueError(f"weights.format {weights_format!r} not in {weight_formats()}")
    return READERS[weights_format]


def names_classes(weights_format: str | None) -> bool:
    """Whether weights of this format name their classes (a card may then leave out labels_file)."""
    return weights_format in READERS and READERS[weights_format].names_classes


def register_reader(weights_format: str, reader: WeightReader) -> None:
    """Add a format at run time (a plug-in, a test); ValueError when the name is taken."""
    if weights_format in READERS:
        raise ValueError(f"weights format {weights_format!r} is already registered")
    READERS[weights_format] = reader
