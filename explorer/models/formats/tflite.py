"""Convert the Coral/AIY uint8 TFLite MobileNetV2 classifiers to float PyTorch (``mobilenet_v2_tf``).

Facts used (see ../shared/DATA.md): tensors are uint8/int32 with ``real = (q - zero_point) * scale``
(per tensor or per output channel); batch-norm is folded into each conv, so every BatchNorm becomes the
identity plus the folded bias; CONV_2D weights are OHWI, DEPTHWISE_CONV_2D weights 1HWC; convolutions
appear in graph order and map one-to-one onto torchvision's; the head is FULLY_CONNECTED after the pool.

Format "tflite": the reader converts once into the cache (``<card name>-<sha256[:12]>.safetensors``) and reads that.
The command line is ``explorer-convert`` (``python -m explorer.tools.convert``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explorer.models.formats.loaded_weights import LoadedWeights, WeightsSource, sha256_file
from explorer.models.formats.state_dict import read_state_dict_file
from explorer.models.registry import create_model

log = logging.getLogger(__name__)

_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _dequantize(graph, index: int, model) -> np.ndarray:
    """Real-valued array of tensor ``index``: (q - zero_point) * scale, per channel when so quantized."""
    tensor = graph.Tensors(index)
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    dtype = {2: np.int32, 3: np.uint8, 9: np.int8, 0: np.float32}[tensor.Type()]
    values = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(tensor.ShapeAsNumpy()).astype(np.float64)
    quant = tensor.Quantization()
    if quant is None or quant.ScaleLength() == 0:
        return values.astype(np.float32)
    scale, zero = quant.ScaleAsNumpy(), quant.ZeroPointAsNumpy()
    shape = [1] * values.ndim
    if scale.size > 1:
        shape[quant.QuantizedDimension()] = -1
    return ((values - zero.reshape(shape)) * scale.reshape(shape)).astype(np.float32)


def read_tflite_layers(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op name, float weight, float bias) for every conv / depthwise / fully-connected op, in graph order."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator

    op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    graph = model.Subgraphs(0)
    layers = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if name in (*_CONV_OPS, "FULLY_CONNECTED"):
            inputs = op.InputsAsNumpy()
            layers.append((name, _dequantize(graph, inputs[1], model), _dequantize(graph, inputs[2], model)))
    return layers


def tflite_to_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Float state_dict for ``mobilenet_v2_tf`` reproducing the TFLite classifier at ``path``."""
    layers = read_tflite_layers(path)
    convs = [layer for layer in layers if layer[0] in _CONV_OPS]
    heads = [layer for layer in layers if layer[0] == "FULLY_CONNECTED"]
    if not heads and convs and convs[-1][0] == "CONV_2D" and convs[-1][1].shape[1:3] == (1, 1):
        # ImageNet's MobileNetV2: the logits come from a final 1x1 convolution (OHWI (N, 1, 1, C)), a linear head
        op, weight, bias = convs.pop()
        heads = [("FULLY_CONNECTED", weight.reshape(weight.shape[0], -1), bias)]
    if len(heads) != 1:
        raise ValueError(f"{path}: expected one FULLY_CONNECTED head, found {len(heads)}")
    num_classes = heads[0][1].shape[0]
    model = create_model("mobilenet_v2_tf", num_classes)
    torch_convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(torch_convs) != len(convs):
        raise ValueError(f"{path}: {len(convs)} TFLite convolutions but MobileNetV2 has {len(torch_convs)}")
    modules = dict(model.named_modules())
    state = model.state_dict()
    for (name, conv), (op, weight, bias) in zip(torch_convs, convs):
        # OHWI -> OIHW for CONV_2D; 1HWC -> C1HW for DEPTHWISE_CONV_2D
        weight = weight.transpose(0, 3, 1, 2) if op == "CONV_2D" else weight.transpose(3, 0, 1, 2)
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise ValueError(f"{path}: {op} weight {weight.shape} does not fit {name} {tuple(conv.weight.shape)}")
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        _set_identity_batchnorm(state, modules, _batchnorm_after(name), bias)
    state["classifier.1.weight"] = torch.from_numpy(heads[0][1])
    state["classifier.1.bias"] = torch.from_numpy(heads[0][2])
    return state


def _batchnorm_after(conv_name: str) -> str:
    """torchvision puts each conv's BatchNorm right after it: '...0' -> '...1', 'conv.2' -> 'conv.3'."""
    prefix, _, index = conv_name.rpartition(".")
    return f"{prefix}.{int(index) + 1}"


def _set_identity_batchnorm(state: dict, modules: dict, bn_name: str, bias: np.ndarray) -> None:
    bn = modules[bn_name]
    if not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"expected BatchNorm2d at {bn_name}, found {type(bn).__name__}")
    state[f"{bn_name}.weight"] = torch.ones_like(bn.weight)
    state[f"{bn_name}.bias"] = torch.from_numpy(bias.astype(np.float32))
    state[f"{bn_name}.running_mean"] = torch.zeros_like(bn.running_mean)
    state[f"{bn_name}.running_var"] = torch.full_like(bn.running_var, 1.0 - bn.eps)  # sqrt(var + eps) == 1


def convert_tflite(path: Path, out: Path) -> Path:
    """Convert ``path`` and save safetensors at ``out`` (written atomically). Returns ``out``."""
    from safetensors.torch import save_file

    state = tflite_to_state_dict(Path(path))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"source_sha256": sha256_file(path)})
    tmp.replace(out)
    log.info("converted %s -> %s", path, out)
    return out


def converted_tflite(source: WeightsSource) -> Path:
    """The card's TFLite file converted to safetensors in the cache, converting it the first time; the source must
    have the card's sha256 when the card gives one."""
    path = source.find(source.file)
    digest = sha256_file(path)
    if source.sha256 and digest != source.sha256:
        raise ValueError(f"{path}: sha256 {digest[:12]}… does not match the card's {source.sha256[:12]}…")
    cached = source.cache_dir / f"{source.card_name}-{digest[:12]}.safetensors"
    return cached if cached.is_file() else convert_tflite(path, cached)


class TfliteReader:
    """A Coral/AIY uint8 TFLite MobileNetV2, read as its float conversion (kept in the cache)."""

    names_classes = False

    def read(self, source: WeightsSource) -> LoadedWeights:
        return read_state_dict_file(converted_tflite(source), source)
