"""The jetkit detector family: a CSP backbone, a PAN neck over P3–P5 and an anchor-free decoupled
head, scaled by width/depth multipliers and a channel cap into sizes: `n`, `s`, `m`, `l` at YOLOv8n/s/m/l's,
and a smaller `t`.

In eval mode the model returns the manifest's `yolov8` layout, `(B, 4+C, N)`: `cx, cy, w, h` in
input pixels, then sigmoid class scores, anchors ordered P3, P4, P5 row-major — the same tensor the
exported ONNX produces, read by `edge.decode.decode_yolov8`. For training it returns a
`HeadOutput` with the raw pieces the losses and distillation need.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from edge.errors import JetkitError

# size: (width multiplier, depth multiplier, channel cap). `n`, `s`, `m`, `l` are YOLOv8n/s/m/l's
# (its yolov8.yaml: the same multipliers and caps, so the same compute as users know it);
# `t` (0.75 M parameters) is smaller, for CPU demos and the tightest Jetsons.
SIZES: dict[str, tuple[float, float, int]] = {
    "t": (0.125, 0.34, 1024),
    "n": (0.25, 0.33, 1024),
    "s": (0.50, 0.33, 1024),
    "m": (0.75, 0.67, 768),
    "l": (1.00, 1.00, 512),
}
# Checkpoints written before sizes had channel caps were uncapped.
UNCAPPED = 1024
STRIDES = (8, 16, 32)
_BASE_CHANNELS = (64, 128, 256, 512, 1024)  # stem, P2, P3, P4, P5 at width 1.0
_BASE_DEPTHS = (3, 6, 6, 3)  # CSP blocks in the P2..P5 stages at depth 1.0
# Bins per box side. 1: one distance through softplus. YOLOv8's 16 (each side a distribution
# over 0..15 strides, with distribution focal loss) is `--reg-max 16`; it is not the default
# because it scored lower and trained slower on jetkit's CPU schedule (BENCHMARKS.md,
# "recipe changes, one at a time": median mAP50-95 0.215 against 0.304 over two seeds).
REG_MAX = 1
YOLOV8_REG_MAX = 16


def _channels(base: int, width: float, max_channels: int) -> int:
    return max(8, int(math.ceil(min(base, max_channels) * width / 8) * 8))


def _depth(base: int, depth: float) -> int:
    return max(1, round(base * depth))


@dataclass(frozen=True)
class ModelConfig:
    """One member of the family: its size name, multipliers and channel cap (0: the size's),
    the class count, and the bins of each box side's distribution (`reg_max`; 1: a single
    distance through softplus, the head of checkpoints written before distributions)."""

    num_classes: int
    size: str = "n"
    width: float = 0.0
    depth: float = 0.0
    max_channels: int = 0
    reg_max: int = REG_MAX

    def __post_init__(self) -> None:
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise JetkitError(
                f"model.num_classes must be an integer >= 1, got {self.num_classes!r}"
            )
        if self.size not in SIZES:
            raise JetkitError(
                f"model size {self.size!r} is not one of {', '.join(SIZES)} (--model)"
            )
        width, depth, max_channels = SIZES[self.size]
        object.__setattr__(self, "width", float(self.width or width))
        object.__setattr__(self, "depth", float(self.depth or depth))
        object.__setattr__(self, "max_channels", int(self.max_channels or max_channels))
        if not (0 < self.width <= 2 and 0 < self.depth <= 2):
            raise JetkitError(f"model width/depth must be in (0, 2], got {self.width}/{self.depth}")
        if self.max_channels < 8:
            raise JetkitError(f"model max_channels must be >= 8, got {self.max_channels}")
        check_reg_max(self.reg_max)

    def channels(self, base: int) -> int:
        """The channels of a layer with `base` channels at width 1.0 and no cap."""
        return _channels(base, self.width, self.max_channels)

    @property
    def neck_channels(self) -> tuple[int, int, int]:
        """Channels of the P3, P4, P5 neck outputs (what feature distillation imitates)."""
        return tuple(self.channels(c) for c in _BASE_CHANNELS[2:])  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConvBNAct(nn.Sequential):
    # BatchNorm momentum 0.1, not YOLOv8's 0.03: jetkit's schedules are hundreds of steps, not
    # tens of thousands, and slow running statistics then lag the weights so far that the eval-mode
    # network scores a fraction of the train-mode one (measured: mAP50 0.04 against 0.95 after
    # 150 steps on one batch).
    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.1),
            nn.SiLU(inplace=True),
        )


class Bottleneck(nn.Module):
    def __init__(self, channels: int, shortcut: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3)
        self.conv2 = ConvBNAct(channels, channels, 3)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return x + y if self.shortcut else y


class CSPBlock(nn.Module):
    """Split, run `n` bottlenecks on one half keeping every intermediate, concatenate, fuse (C2f)."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.stem = ConvBNAct(c_in, 2 * self.hidden)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, shortcut) for _ in range(n))
        self.fuse = ConvBNAct((2 + n) * self.hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.stem(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = channels // 2
        self.reduce = ConvBNAct(channels, hidden)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.fuse = ConvBNAct(4 * hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.reduce(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        return self.fuse(torch.cat((y0, y1, y2, self.pool(y2)), dim=1))


class Backbone(nn.Module):
    """Stem + four stages (P2..P5); `stages[k]` is what `--freeze k+1` freezes, stem first."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = [config.channels(b) for b in _BASE_CHANNELS]
        d = [_depth(b, config.depth) for b in _BASE_DEPTHS]
        self.stages = nn.ModuleList(
            [
                ConvBNAct(3, c[0], 3, 2),
                nn.Sequential(ConvBNAct(c[0], c[1], 3, 2), CSPBlock(c[1], c[1], d[0])),
                nn.Sequential(ConvBNAct(c[1], c[2], 3, 2), CSPBlock(c[2], c[2], d[1])),
                nn.Sequential(ConvBNAct(c[2], c[3], 3, 2), CSPBlock(c[3], c[3], d[2])),
                nn.Sequential(ConvBNAct(c[3], c[4], 3, 2), CSPBlock(c[4], c[4], d[3]), SPPF(c[4])),
            ]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs[2:]  # P3, P4, P5


class Neck(nn.Module):
    """PAN: top-down then bottom-up fusion, outputs at the backbone's P3/P4/P5 channel counts."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c3, c4, c5 = config.neck_channels
        n = _depth(3, config.depth)
        self.top_p4 = CSPBlock(c5 + c4, c4, n, shortcut=False)
        self.top_p3 = CSPBlock(c4 + c3, c3, n, shortcut=False)
        self.down_p3 = ConvBNAct(c3, c3, 3, 2)
        self.out_p4 = CSPBlock(c3 + c4, c4, n, shortcut=False)
        self.down_p4 = ConvBNAct(c4, c4, 3, 2)
        self.out_p5 = CSPBlock(c4 + c5, c5, n, shortcut=False)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = features
        t4 = self.top_p4(torch.cat((F.interpolate(p5, scale_factor=2.0), p4), dim=1))
        n3 = self.top_p3(torch.cat((F.interpolate(t4, scale_factor=2.0), p3), dim=1))
        n4 = self.out_p4(torch.cat((self.down_p3(n3), t4), dim=1))
        n5 = self.out_p5(torch.cat((self.down_p4(n4), p5), dim=1))
        return [n3, n4, n5]


class HeadOutput(NamedTuple):
    """Training-time outputs over all `N` anchors (P3, P4, P5 row-major)."""

    cls_logits: torch.Tensor  # (B, N, C)
    xyxy: torch.Tensor  # (B, N, 4) input pixels
    anchors_xy: torch.Tensor  # (N, 2) anchor centres, input pixels
    strides: torch.Tensor  # (N,)
    features: list[torch.Tensor]  # neck outputs P3..P5, (B, C_l, H_l, W_l)
    ltrb_logits: torch.Tensor | None = None  # (B, N, 4, reg_max) side distributions; None at 1


def make_anchors(
    sizes_hw: list[tuple[int, int]], strides: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres `(N, 2)` in input pixels and the stride of each `(N,)`, level by level."""
    points, per_anchor = [], []
    for (height, width), stride in zip(sizes_hw, strides, strict=True):
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 2))
        per_anchor.append(torch.full((height * width,), float(stride), device=device))
    return torch.cat(points), torch.cat(per_anchor)


class DistributionDecode(nn.Module):
    """`(B, 4·R, N)` bin logits → `(B, 4, N)` expected distances in strides: a softmax over the
    `R` bins, then their mean through a fixed 1x1 convolution with weights 0..R-1. This is
    Ultralytics' DFL layout, which calibration keeps in float as a known island."""

    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = bins
        self.register_buffer(
            "bin_values", torch.arange(bins, dtype=torch.float32).view(1, bins, 1, 1)
        )

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        batch, _, anchors = logits.shape
        probs = logits.view(batch, 4, self.bins, anchors).transpose(2, 1).softmax(1)
        return F.conv2d(probs, self.bin_values).view(batch, 4, anchors)


class Head(nn.Module):
    """Per level: a box branch giving left/top/right/bottom distances in strides — each a
    distribution over `reg_max` bins (or, at `reg_max` 1, one value through softplus) — and a
    class branch giving logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_classes = config.num_classes
        self.reg_max = config.reg_max
        self.box = nn.ModuleList()
        self.cls = nn.ModuleList()
        for channels in config.neck_channels:
            hidden = config.neck_channels[0]
            self.box.append(
                nn.Sequential(
                    ConvBNAct(channels, hidden, 3),
                    ConvBNAct(hidden, hidden, 3),
                    nn.Conv2d(hidden, 4 * config.reg_max, 1),
                )
            )
            self.cls.append(
                nn.Sequential(
                    ConvBNAct(channels, hidden, 3),
                    ConvBNAct(hidden, hidden, 3),
                    nn.Conv2d(hidden, config.num_classes, 1),
                )
            )
        self.decode = DistributionDecode(config.reg_max) if config.reg_max > 1 else None
        self.reset_priors()

    def reset_priors(self) -> None:
        """Start each level's class scores at about 5 objects per 640² image spread over its
        cells and the classes (YOLOv8's prior): coarse levels, with fewer cells, start higher,
        so no level drowns its first positives in negatives."""
        for branch, stride in zip(self.cls, STRIDES, strict=True):
            nn.init.constant_(branch[-1].bias, math.log(5 / self.num_classes / (640 / stride) ** 2))
        for branch in self.box:
            nn.init.constant_(branch[-1].bias, 1.0)

    def forward(self, features: list[torch.Tensor]) -> HeadOutput:
        sizes_hw = [(f.shape[2], f.shape[3]) for f in features]
        anchors_xy, strides = make_anchors(sizes_hw, STRIDES, features[0].device)
        box = torch.cat(
            [branch(f).flatten(2) for branch, f in zip(self.box, features, strict=True)], dim=2
        )
        logits = torch.cat(
            [branch(f).flatten(2) for branch, f in zip(self.cls, features, strict=True)], dim=2
        )
        ltrb_logits = None
        if self.decode is None:
            ltrb = F.softplus(box)
        else:
            ltrb = self.decode(box)
            ltrb_logits = box.view(box.shape[0], 4, self.reg_max, -1).permute(0, 3, 1, 2)
        ltrb_px = ltrb.transpose(1, 2) * strides[:, None]
        xyxy = torch.cat((anchors_xy - ltrb_px[..., :2], anchors_xy + ltrb_px[..., 2:]), dim=-1)
        return HeadOutput(logits.transpose(1, 2), xyxy, anchors_xy, strides, features, ltrb_logits)


class DetectionModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.neck = Neck(config)
        self.head = Head(config)

    def forward(self, images: torch.Tensor, raw: bool | None = None) -> Any:
        """`images (B,3,H,W)`, H and W multiples of 32. `raw` (default: in training mode) returns
        the `HeadOutput`; otherwise the `yolov8` tensor `(B, 4+C, N)`."""
        out = self.head(self.neck(self.backbone(images)))
        if raw if raw is not None else self.training:
            return out
        return to_yolov8(out)


def freeze_stages(model: DetectionModel, stages: int) -> None:
    """Freeze the stem and the first backbone stages (transfer learning); their BatchNorm layers
    stay in eval mode so their statistics stay those of the loaded weights."""
    for stage in model.backbone.stages[:stages]:
        stage.eval()
        for param in stage.parameters():
            param.requires_grad_(False)


def to_yolov8(out: HeadOutput) -> torch.Tensor:
    """`HeadOutput` → `(B, 4+C, N)`: cx, cy, w, h (input pixels), sigmoid scores."""
    xy = (out.xyxy[..., :2] + out.xyxy[..., 2:]) / 2
    wh = out.xyxy[..., 2:] - out.xyxy[..., :2]
    return torch.cat((xy, wh, out.cls_logits.sigmoid()), dim=-1).transpose(1, 2)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, input_hw: tuple[int, int]) -> float:
    """Multiply-adds × 2 of every convolution for one image, from a real forward pass (GFLOPs)."""
    total = [0]

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        assert isinstance(module, nn.Conv2d)
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
        total[0] += 2 * output.numel() * kernel // module.groups

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(hook) for m in convs]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_hw), raw=True)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total[0] / 1e9


def check_reg_max(reg_max: object) -> None:
    if not isinstance(reg_max, int) or not 1 <= reg_max <= 64:
        raise JetkitError(f"reg_max must be an integer in [1, 64], got {reg_max!r}")


def check_input_hw(input_hw: tuple[int, int]) -> None:
    height, width = input_hw
    if height % STRIDES[-1] or width % STRIDES[-1]:
        raise JetkitError(
            f"--imgsz {height}x{width} must be a multiple of {STRIDES[-1]} (the model's largest "
            f"stride), e.g. {STRIDES[-1] * max(1, round(height / STRIDES[-1]))}"
        )
