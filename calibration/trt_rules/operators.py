"""Which ONNX operators TensorRT's ONNX parser takes, per TensorRT version, and the attribute
restrictions of the ones detectors use.

Source: onnx-tensorrt `docs/operators.md`, the parser's own support table, on the branch of each
release: 8.5-GA (fdeeaca8), 8.6-GA (ee0b139b), the 10.x table of TensorRT 10.15 and `main`
(TensorRT 11.2). https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md
Each later table keeps every operator of the one before. Operators from other domains are
TensorRT plugins, found by name in the plugin registry at build time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from calibration.trt_rules.findings import Finding, Rule
from calibration.trt_rules.graph import GraphView, attribute, node_label

_TABLE = "onnx-tensorrt docs/operators.md, https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md"

# Supported ("Y") in every table from 8.5 on.
_BASE = frozenset(
    {
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Ceil",
        "Celu",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "GRU",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gemm",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "GridSample",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "If",
        "ImageScaler",
        "InstanceNormalization",
        "IsNaN",
        "LRN",
        "LSTM",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "Loop",
        "LpNormalization",
        "LpPool",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "MeanVarianceNormalization",
        "Min",
        "Mod",
        "Mul",
        "Neg",
        "NonMaxSuppression",
        "NonZero",
        "Not",
        "OneHot",
        "Or",
        "PRelu",
        "Pad",
        "ParametricSoftplus",
        "Pow",
        "QuantizeLinear",
        "RNN",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "Reciprocal",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "ReverseSequence",
        "RoiAlign",
        "Round",
        "ScaledTanh",
        "Scan",
        "Scatter",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Shrink",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Trilu",
        "Unsqueeze",
        "Upsample",
        "Where",
        "Xor",
    }
)
_SUPPORTED = {
    "8.5": _BASE,
    "8.6": _BASE | {"GroupNormalization", "IsInf", "LayerNormalization"},
}
_SUPPORTED["10"] = _SUPPORTED["8.6"] | {
    "Attention",
    "BlackmanWindow",
    "CastLike",
    "DeformConv",
    "Gelu",
    "HammingWindow",
    "HannWindow",
    "Hardmax",
    "Mish",
    "RMSNormalization",
    "RotaryEmbedding",
    "STFT",
    "TensorScatter",
}
_SUPPORTED["11"] = _SUPPORTED["10"] | {"DFT", "Swish"}
SUPPORTED_OPERATORS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in _SUPPORTED.items()}
TABLE_VERSIONS = tuple(SUPPORTED_OPERATORS)

# The newest opset each parser reads (the tables' headers: "supports operators up to Opset 17",
# "in the inclusive range of opset 9 to opset 20" for 10.0-10.3, JetPack 6's TensorRT, "to opset
# 24" for 11.2).
MAX_OPSET = {"8.5": 17, "8.6": 17, "10": 20, "11": 24}
MIN_OPSET = 9

# TensorRT's plugins an ONNX exporter may emit as custom operators (Ultralytics and YOLOv8
# end-to-end exports use EfficientNMS_TRT), resolved from libnvinfer_plugin's registry.
KNOWN_PLUGINS = frozenset(
    {
        "EfficientNMS_TRT",
        "EfficientNMS_ONNX_TRT",
        "BatchedNMS_TRT",
        "BatchedNMSDynamic_TRT",
        "RoIAlign_TRT",
        "ROIAlign_TRT",
        "ScatterND",
        "InstanceNormalization_TRT",
    }
)

OPERATOR = Rule("onnx.operator", "operators TensorRT's ONNX parser supports", _TABLE)
PLUGIN = Rule(
    "onnx.plugin",
    "custom operators build only where a TensorRT plugin of that name is registered",
    "TensorRT Developer Guide, Extending TensorRT with Custom Layers",
    severity="warning",
)
# Warnings: a newer opset parses as long as its operators kept the signatures the parser knows
# (opset 18 moved Reduce* axes to an input, and Split's sizes).
OPSET = Rule("onnx.opset", "the opsets TensorRT's ONNX parser reads", _TABLE, severity="warning")
ATTRIBUTE = Rule("onnx.attribute", "operator restrictions in TensorRT's ONNX support table", _TABLE)


def check_operators(view: GraphView, table: str) -> Iterator[Finding]:
    """Operators and attributes that TensorRT `table` (a `TABLE_VERSIONS` key) cannot parse."""
    supported = SUPPORTED_OPERATORS[table]
    yield from _check_opset(view, table)
    for node in view.nodes:
        label = node_label(node)
        if node.domain not in ("", "ai.onnx"):
            rule = PLUGIN if node.op_type in KNOWN_PLUGINS else OPERATOR
            yield Finding(
                rule,
                label,
                f"{node.op_type} from domain {node.domain} is not an ONNX operator; "
                + (
                    "load TensorRT's plugins (libnvinfer_plugin)"
                    if rule is PLUGIN
                    else "TensorRT needs a plugin for it; re-export without custom operators"
                ),
            )
            continue
        if node.op_type not in supported:
            if node.op_type in KNOWN_PLUGINS:
                yield Finding(PLUGIN, label, f"{node.op_type} is TensorRT's plugin of that name")
                continue
            newer = [v for v in TABLE_VERSIONS if node.op_type in SUPPORTED_OPERATORS[v]]
            hint = f" (TensorRT {newer[0]} has it)" if newer else ""
            yield Finding(OPERATOR, label, f"TensorRT {table} cannot parse {node.op_type}{hint}")
            continue
        yield from _check_attributes(view, node, label, table)


def _check_opset(view: GraphView, table: str) -> Iterator[Finding]:
    for opset in view.model.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            continue
        if opset.version > MAX_OPSET[table]:
            yield Finding(
                OPSET,
                None,
                f"opset {opset.version}; TensorRT {table} reads up to {MAX_OPSET[table]} "
                f"(re-export with opset {MAX_OPSET[table]}, e.g. `jetkit export --opset 17`)",
            )
        elif opset.version < MIN_OPSET:
            yield Finding(
                OPSET, None, f"opset {opset.version}; TensorRT reads {MIN_OPSET} and newer"
            )


def _check_attributes(view: GraphView, node: Any, label: str, table: str) -> Iterator[Finding]:
    modern = table not in ("8.5", "8.6")
    if node.op_type == "TopK":
        k = view.constant_array(node.input[1]) if len(node.input) > 1 else None
        if k is None:
            yield Finding(ATTRIBUTE, label, "TopK's K must be a constant")
        elif modern and int(k.ravel()[0]) >= 3840:
            yield Finding(ATTRIBUTE, label, f"TopK's K is {int(k.ravel()[0])}, must be < 3840")
        if modern and int(attribute(node, "sorted", 1)) != 1:
            yield Finding(ATTRIBUTE, label, "TopK must be sorted")
    elif node.op_type == "MaxPool" and modern:
        if any(int(d) != 1 for d in attribute(node, "dilations", [])):
            yield Finding(ATTRIBUTE, label, "MaxPool dilations must be ones")
    elif node.op_type == "Resize" and int(attribute(node, "antialias", 0)):
        yield Finding(ATTRIBUTE, label, "Resize with antialiasing")
    elif node.op_type == "ScatterND" and attribute(node, "reduction", "none") != "none":
        yield Finding(ATTRIBUTE, label, "ScatterND with a reduction")
