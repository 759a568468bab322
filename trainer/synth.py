"""The built-in synthetic detection data set: YOLO format, no download, deterministic for a seed.

Six classes in pairs that are easy to confuse (circle/ellipse and square/rectangle, told apart
by an aspect ratio of 1.5-2.4 that rotation and occlusion blur; hexagon/circle when small;
triangle), painted from one shared palette with jitter so that colour never gives the class
away, at scales from ~8 px to ~60% of the image, on textured backgrounds with unlabelled clutter,
occlusion, noise, blur and JPEG artefacts: hard enough that a bigger model scores better, small
enough to generate in seconds.

Occlusion rule: an object is labelled when at least `LABEL_VISIBLE_FRACTION` of its pixels stay
visible, with the box around its visible pixels. Placements that would leave an object between
`HIDDEN_VISIBLE_FRACTION` and that (clearly visible, yet unlabelled) are retried elsewhere, so an
unlabelled object is always mostly hidden and a model is never taught to miss a near-complete one.

Every image comes from its own generator `default_rng((seed, split_index, image_index))`: train
and val never share an image, and the same seed writes byte-identical files.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import JetkitError

SYNTH_CLASSES: tuple[str, ...] = ("circle", "ellipse", "square", "rectangle", "triangle", "hexagon")
# Bumped whenever the same config would render different pixels: a folder written by another
# version is not reused.
SYNTH_VERSION = 2
SPLITS = ("train", "val")

LABEL_VISIBLE_FRACTION = 0.6
HIDDEN_VISIBLE_FRACTION = 0.25
MIN_OBJECT_PX = 8
MAX_OBJECT_FRACTION = 0.6
MAX_OBJECTS = 12
BACKGROUND_IMAGE_P = 0.05
SIZE_RANGE = (0.6, 1.4)
PLACEMENT_TRIES = 10
JPEG_QUALITY = 90

# Owner map values that are not an object index.
BACKGROUND = -1
CLUTTER = -2

# One palette (BGR) for objects, clutter and background tints alike.
PALETTE_BGR = np.array(
    [
        (40, 40, 210),  # red
        (30, 130, 240),  # orange
        (40, 210, 230),  # yellow
        (60, 170, 60),  # green
        (170, 160, 40),  # teal
        (200, 90, 40),  # blue
        (150, 50, 140),  # purple
        (225, 225, 225),  # white
        (45, 45, 45),  # black
    ],
    dtype=np.float32,
)
_COLOR_JITTER = 30.0
# An object takes the colour that stands out most from what it covers among a few draws, so it
# is never invisible yet colour still says nothing about its class.
_COLOR_CANDIDATES = 4
_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
)
_TEXT_CHARS = "ABCDEFGHKLMNPRSTUVWXYZ23456789"
_SUBPIXEL_BITS = 4


class SynthConfigError(JetkitError):
    """A `SynthConfig` field has a bad value; `field` names it so a CLI can name its option."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"synthetic data set {field}: {problem}")


@dataclass(frozen=True)
class SynthConfig:
    """How many images to render per split, their base size and the seed."""

    train_images: int = 800
    val_images: int = 200
    imgsz: int = 320
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_images", "val_images", "imgsz", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SynthConfigError(name, f"must be an integer, got {value!r}")
        for name in ("train_images", "val_images"):
            if getattr(self, name) < 1:
                raise SynthConfigError(name, f"must be at least 1, got {getattr(self, name)}")
        if not 64 <= self.imgsz <= 2048:
            raise SynthConfigError("imgsz", f"must be between 64 and 2048, got {self.imgsz}")
        if self.seed < 0:
            raise SynthConfigError("seed", f"must be 0 or more, got {self.seed}")


@dataclass(frozen=True)
class Scene:
    """A rendered image before labelling.

    `image (H,W,3)` BGR uint8; `owner (H,W)` int16: the index of the object seen at each pixel,
    or BACKGROUND / CLUTTER; `areas (N,)` int64: each object's pixel count as drawn, before
    anything covered it; `class_ids (N,)` int64.
    """

    image: np.ndarray
    owner: np.ndarray
    areas: np.ndarray
    class_ids: np.ndarray


# --- labelling -------------------------------------------------------------------------------


def visible_fractions(owner: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """`(N,)` float64: the share of each object's `areas (N,)` pixels that `owner (H,W)` still
    shows."""
    seen = np.bincount(owner[owner >= 0].astype(np.intp), minlength=len(areas))
    return seen / np.maximum(areas, 1)


def visible_boxes(
    owner: np.ndarray, areas: np.ndarray, min_fraction: float = LABEL_VISIBLE_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """The labels of a scene: `xyxy (M,4)` float32 pixel edges around the visible pixels of each
    object that shows at least `min_fraction` of itself, and those objects' indices `(M,)`."""
    keep = np.flatnonzero(visible_fractions(owner, areas) >= min_fraction)
    xyxy = np.empty((len(keep), 4), np.float32)
    for row, index in enumerate(keep):
        x, y, w, h = cv2.boundingRect((owner == index).view(np.uint8))
        xyxy[row] = (x, y, x + w, y + h)
    return xyxy, keep


def render_image(
    rng: np.random.Generator, size_wh: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One labelled image: BGR uint8 `(H,W,3)`, `xyxy (N,4)` float32 pixels, `class_ids (N,)`."""
    scene = render_scene(rng, size_wh)
    xyxy, keep = visible_boxes(scene.owner, scene.areas)
    return scene.image, xyxy, scene.class_ids[keep]


# --- rendering -------------------------------------------------------------------------------


def render_scene(rng: np.random.Generator, size_wh: tuple[int, int]) -> Scene:
    """Background, clutter under the objects, the objects (back to front), clutter over them,
    then camera degradations. Pure: everything random comes from `rng`."""
    width, height = size_wh
    canvas = _background(rng, size_wh)
    for _ in range(rng.integers(0, 6)):
        _blend(canvas, _clutter_alpha(rng, size_wh), _palette_color(rng))

    owner = np.full((height, width), BACKGROUND, np.int16)
    visible: list[int] = []
    areas: list[int] = []
    class_ids: list[int] = []
    count = 0 if rng.random() < BACKGROUND_IMAGE_P else int(rng.integers(1, MAX_OBJECTS + 1))
    max_size = max(MIN_OBJECT_PX * 1.5, MAX_OBJECT_FRACTION * min(width, height))
    sizes = np.exp(rng.uniform(math.log(MIN_OBJECT_PX), math.log(max_size), count))
    # Mostly large at the back and small in front, with enough shuffle that big things also
    # cover small ones.
    order = np.argsort(-sizes * np.exp(rng.normal(0.0, 0.6, count)))
    for size in sizes[order]:
        class_id = int(rng.integers(len(SYNTH_CLASSES)))
        outline = _outline(rng, class_id, float(size))
        for _ in range(PLACEMENT_TRIES):
            placed = _place(rng, outline, size_wh)
            if placed is None:
                break
            (x0, y0), alpha = placed
            mask = alpha >= 128
            area = int(mask.sum())
            region = (slice(y0, y0 + alpha.shape[0]), slice(x0, x0 + alpha.shape[1]))
            if area and _covers_fairly(owner[region][mask], visible, areas):
                owner[region][mask] = len(areas)
                visible.append(area)
                areas.append(area)
                class_ids.append(class_id)
                patch = _object_patch(rng, canvas[region], alpha, outline - (x0, y0), size)
                _blend_patch(canvas, region, alpha, patch)
                break

    for _ in range(rng.integers(0, 4)):
        alpha = _clutter_alpha(rng, size_wh)
        mask = alpha >= 128
        if _covers_fairly(owner[mask], visible, areas):
            owner[mask] = CLUTTER
            _blend(canvas, alpha, _palette_color(rng))

    return Scene(
        image=_degrade(rng, canvas),
        owner=owner,
        areas=np.asarray(areas, np.int64),
        class_ids=np.asarray(class_ids, np.int64),
    )


def _covers_fairly(covered_owners: np.ndarray, visible: list[int], areas: list[int]) -> bool:
    """Whether painting over pixels whose owners are `covered_owners (K,)` keeps every object
    either labelled or mostly hidden; if so, `visible` is updated to match."""
    if not areas:
        return True
    lost = np.bincount(covered_owners[covered_owners >= 0].astype(np.intp), minlength=len(areas))
    after = (np.asarray(visible) - lost) / np.asarray(areas)
    if np.any((after >= HIDDEN_VISIBLE_FRACTION) & (after < LABEL_VISIBLE_FRACTION)):
        return False
    visible[:] = (np.asarray(visible) - lost).tolist()
    return True


def _outline(rng: np.random.Generator, class_id: int, size: float) -> np.ndarray:
    """The shape's polygon `(K,2)` float64 around (0, 0); `size` is its longer extent."""
    name = SYNTH_CLASSES[class_id]
    half = size / 2
    if name in ("circle", "ellipse"):
        aspect = 1.0 if name == "circle" else rng.uniform(1.5, 2.3)
        t = np.linspace(0, 2 * np.pi, max(16, min(64, int(size))), endpoint=False)
        points = np.stack((half * np.cos(t), half / aspect * np.sin(t)), axis=1)
    elif name in ("square", "rectangle"):
        aspect = 1.0 if name == "square" else rng.uniform(1.6, 2.4)
        points = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64) * (half, half / aspect)
    elif name == "triangle":
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3 + rng.normal(0, 0.12, 3)
        points = size / math.sqrt(3) * np.stack((np.cos(t), np.sin(t)), axis=1)
    else:
        t = np.arange(6) * np.pi / 3
        points = half * np.stack((np.cos(t), np.sin(t)), axis=1)
    # A square keeps only a small tilt: turned by 45 degrees it would read as a diamond.
    angle = rng.uniform(-0.2, 0.2) if name == "square" else rng.uniform(0, 2 * np.pi)
    if name != "circle":
        cos, sin = math.cos(angle), math.sin(angle)
        points = points @ np.array([[cos, sin], [-sin, cos]])
    return points


def _place(
    rng: np.random.Generator, outline: np.ndarray, size_wh: tuple[int, int]
) -> tuple[tuple[int, int], np.ndarray] | None:
    """A random spot that keeps the whole shape inside the image: the top-left `(x0, y0)` of its
    region and its anti-aliased coverage `alpha (h,w)` uint8 there; None if it cannot fit."""
    width, height = size_wh
    low, high = outline.min(axis=0), outline.max(axis=0)
    span_x, span_y = high - low
    if span_x > width - 4 or span_y > height - 4:
        return None
    centre = (
        rng.uniform(2 - low[0], width - 2 - high[0]),
        rng.uniform(2 - low[1], height - 2 - high[1]),
    )
    points = outline + centre
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 2
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(alpha, [_fixed(points - (x0, y0))], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
    return (int(x0), int(y0)), alpha


def _fixed(points: np.ndarray) -> np.ndarray:
    """`(K,2)` float pixel coordinates → OpenCV's fixed point with `_SUBPIXEL_BITS`."""
    # Pixel centres sit at integer coordinates in OpenCV's drawing, half a pixel off the edges.
    return np.round((points - 0.5) * (1 << _SUBPIXEL_BITS)).astype(np.int32)


def _object_patch(
    rng: np.random.Generator,
    under: np.ndarray,
    alpha: np.ndarray,
    outline: np.ndarray,
    size: float,
) -> np.ndarray:
    """The object's paint over its region `(h,w,3)` uint8: a palette colour that stands out from
    `under`, with sometimes shading, stripes, a border or an inner copy of the shape."""
    below = np.array(cv2.mean(under, mask=(alpha >= 128).view(np.uint8))[:3], np.float32)
    color = max(
        (_palette_color(rng) for _ in range(_COLOR_CANDIDATES)),
        key=lambda c: float(np.abs(c - below).sum()),
    )
    height, width = alpha.shape
    patch = np.empty((height, width, 3), np.float32)
    patch[:] = color
    if rng.random() < 0.5:
        patch *= _ramp(rng, (width, height), rng.uniform(0.75, 0.95), rng.uniform(1.05, 1.2))[
            ..., None
        ]
    patch = np.clip(patch, 0, 255).astype(np.uint8)
    if size < 16:
        return patch
    second = tuple(float(v) for v in _palette_color(rng))
    style = rng.random()
    if style < 0.2:
        period = max(3.0, size / rng.uniform(3, 7))
        _stripes(patch, rng.uniform(0, np.pi), period, second)
    elif style < 0.4:
        thickness = max(1, int(size * rng.uniform(0.04, 0.12)))
        cv2.polylines(patch, [_fixed(outline)], True, second, thickness, cv2.LINE_AA, 4)
    elif style < 0.5:
        centre = outline.mean(axis=0)
        inner = centre + (outline - centre) * rng.uniform(0.3, 0.6)
        cv2.fillPoly(patch, [_fixed(inner)], second, cv2.LINE_AA, _SUBPIXEL_BITS)
    return patch


def _stripes(image: np.ndarray, angle: float, period: float, color: tuple[float, ...]) -> None:
    """Parallel stripes half a `period` wide across all of `image`, in place."""
    height, width = image.shape[:2]
    direction = np.array((math.cos(angle), math.sin(angle)))
    normal = np.array((-direction[1], direction[0]))
    centre = np.array((width / 2, height / 2))
    reach = math.hypot(width, height)
    thickness = max(1, int(period / 2))
    for offset in np.arange(-reach / 2, reach / 2, period):
        a = centre + normal * offset - direction * reach
        b = centre + normal * offset + direction * reach
        cv2.line(image, _fixed(a[None])[0], _fixed(b[None])[0], color, thickness, cv2.LINE_AA, 4)


def _ramp(
    rng: np.random.Generator, size_wh: tuple[int, int], start: float, stop: float
) -> np.ndarray:
    """`(H,W)` float32 going linearly from `start` to `stop` along a random direction."""
    width, height = size_wh
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.arange(width, dtype=np.float32) * math.cos(angle)
    ys = np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
    t = xs + ys
    t -= t.min()
    t /= max(float(t.max()), 1.0)
    return start + (stop - start) * t


def _palette_color(rng: np.random.Generator) -> np.ndarray:
    """A palette colour `(3,)` float32 with per-channel jitter."""
    base = PALETTE_BGR[rng.integers(len(PALETTE_BGR))]
    jitter = rng.uniform(-_COLOR_JITTER, _COLOR_JITTER, 3).astype(np.float32)
    return np.clip(base + jitter, 0, 255)


def _muted_color(rng: np.random.Generator) -> np.ndarray:
    """A palette colour `(3,)` float32 washed towards a random grey, for backgrounds."""
    mix = rng.uniform(0.15, 0.6)
    return _palette_color(rng) * mix + rng.uniform(40, 210) * (1 - mix)


def _background(rng: np.random.Generator, size_wh: tuple[int, int]) -> np.ndarray:
    """A textured background `(H,W,3)` uint8: gradient, stripes or checker, colour blotches or
    low-contrast blobs, sometimes with blotches on top."""
    width, height = size_wh
    base = _muted_color(rng)
    kind = rng.integers(4)
    if kind == 0:
        t = _ramp(rng, size_wh, 0.0, 1.0)[..., None]
        image = base + t * (_muted_color(rng) - base)
    elif kind == 1:
        offset = rng.uniform(15, 45) * rng.choice((-1, 1), 3)
        period = rng.uniform(4, 40)
        if rng.random() < 0.5:
            angle = rng.uniform(0, np.pi)
            t = (
                np.arange(width, dtype=np.float32) * math.cos(angle)
                + np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
            ) / period
        else:
            t = np.arange(width)[None] // period + np.arange(height)[:, None] // period
        image = base + (np.floor(t) % 2)[..., None] * offset
    elif kind == 2:
        image = base + _blotches(rng, size_wh, rng.uniform(20, 50))
    else:
        image = np.empty((height, width, 3), np.float32)
        image[:] = base
        image = _blobs(rng, np.clip(image, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        image = image + _blotches(rng, size_wh, rng.uniform(8, 25))
    return np.clip(image, 0, 255).astype(np.uint8)


def _blotches(rng: np.random.Generator, size_wh: tuple[int, int], amplitude: float) -> np.ndarray:
    """Smooth colour noise `(H,W,3)` float32: a coarse random grid upsampled bicubically."""
    width, height = size_wh
    cell = rng.uniform(12, 64)
    grid = rng.normal(0, amplitude, (max(2, int(height / cell)), max(2, int(width / cell)), 3))
    return cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def _blobs(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """`image` with low-contrast irregular blobs (never one of the classes' shapes), blurred."""
    height, width = image.shape[:2]
    base = np.array(cv2.mean(image)[:3])
    for _ in range(rng.integers(6, 20)):
        radius = rng.uniform(0.05, 0.3) * min(width, height)
        t = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(7, 13)))
        r = radius * rng.uniform(0.3, 1.0, len(t))
        centre = rng.uniform((0, 0), (width, height))
        points = centre + np.stack((r * np.cos(t), r * np.sin(t)), axis=1)
        color = tuple(float(v) for v in np.clip(base + rng.uniform(-25, 25, 3), 0, 255))
        cv2.fillPoly(image, [_fixed(points)], color, cv2.LINE_AA, _SUBPIXEL_BITS)
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(1.0, 3.0)).astype(np.float32)


def _clutter_alpha(rng: np.random.Generator, size_wh: tuple[int, int]) -> np.ndarray:
    """One unlabelled distractor's coverage `(H,W)` uint8: a line, an arc, a cross or a few
    text-like strokes; never a closed filled shape."""
    width, height = size_wh
    alpha = np.zeros((height, width), np.uint8)
    short = min(width, height)
    thickness = int(rng.integers(1, max(2, short // 60) + 1))
    centre = rng.uniform((0, 0), (width, height))
    kind = rng.integers(4)
    if kind == 0:
        end = centre + rng.normal(0, short / 3, 2)
        cv2.line(
            alpha,
            _fixed(centre[None])[0],
            _fixed(end[None])[0],
            255,
            thickness,
            cv2.LINE_AA,
            _SUBPIXEL_BITS,
        )
    elif kind == 1:
        axes = rng.uniform(short * 0.03, short * 0.3, 2)
        start = rng.uniform(0, 360)
        cv2.ellipse(
            alpha,
            _fixed(centre[None])[0],
            tuple(int(a * 16) for a in axes),
            rng.uniform(0, 180),
            start,
            start + rng.uniform(60, 250),
            255,
            thickness,
            cv2.LINE_AA,
            _SUBPIXEL_BITS,
        )
    elif kind == 2:
        arm = rng.uniform(short * 0.02, short * 0.12)
        angle = rng.uniform(0, np.pi / 2)
        for turn in (0.0, np.pi / 2):
            offset = arm * np.array((math.cos(angle + turn), math.sin(angle + turn)))
            cv2.line(
                alpha,
                _fixed((centre - offset)[None])[0],
                _fixed((centre + offset)[None])[0],
                255,
                thickness,
                cv2.LINE_AA,
                _SUBPIXEL_BITS,
            )
    else:
        text = "".join(rng.choice(list(_TEXT_CHARS), rng.integers(2, 7)))
        # Hershey fonts are about 22 px tall at scale 1.
        scale = rng.uniform(0.02, 0.07) * short / 22
        font = int(rng.choice(_FONTS))
        cv2.putText(
            alpha,
            text,
            (int(centre[0]), int(centre[1])),
            font,
            scale,
            255,
            max(1, int(scale * 1.5)),
            cv2.LINE_AA,
        )
    return alpha


def _blend(canvas: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """Paint `color (3,)` over `canvas (H,W,3)` uint8 with coverage `alpha (H,W)`, in place."""
    x, y, w, h = cv2.boundingRect(alpha)
    if w == 0 or h == 0:
        return
    region = (slice(y, y + h), slice(x, x + w))
    patch = np.empty((h, w, 3), np.float32)
    patch[:] = color
    _blend_patch(canvas, region, alpha[region], patch)


def _blend_patch(
    canvas: np.ndarray, region: tuple[slice, slice], alpha: np.ndarray, patch: np.ndarray
) -> None:
    """`canvas[region]` ← `patch (h,w,3)` over it with coverage `alpha (h,w)` uint8, in place."""
    under = canvas[region].astype(np.float32)
    weight = alpha[..., None].astype(np.float32) * (1 / 255)
    under += (patch.astype(np.float32) - under) * weight
    canvas[region] = np.clip(under + 0.5, 0, 255).astype(np.uint8)


def _degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A camera's flaws: sometimes blur, usually sensor noise, sometimes strong JPEG."""
    if rng.random() < 0.2:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.4))
    if rng.random() < 0.8:
        noise = rng.standard_normal(image.shape, np.float32) * rng.uniform(2, 10)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        quality = int(rng.integers(25, 75))
        _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    return image


# --- the data set on disk ----------------------------------------------------------------------


def image_size(rng: np.random.Generator, imgsz: int) -> tuple[int, int]:
    """A random `size_wh`: each side in `SIZE_RANGE` × `imgsz`, rounded to an even number."""
    low, high = SIZE_RANGE
    width, height = (2 * round(imgsz * rng.uniform(low, high) / 2) for _ in range(2))
    return width, height


def yolo_label_lines(xyxy: np.ndarray, class_ids: np.ndarray, size_wh: tuple[int, int]) -> str:
    """YOLO label text: one `cls cx cy w h` line per box, normalised to the image, 6 decimals."""
    width, height = size_wh
    lines = []
    for (x0, y0, x1, y1), class_id in zip(xyxy.tolist(), class_ids.tolist(), strict=True):
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        w, h = (x1 - x0) / width, (y1 - y0) / height
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _synth_stamp(config: SynthConfig) -> dict[str, int]:
    return {"version": SYNTH_VERSION, **asdict(config)}


def _data_yaml(config: SynthConfig) -> str:
    import yaml

    document = {
        "path": ".",
        "train": "images/train",
        "val": "images/val",
        "names": list(SYNTH_CLASSES),
        "synth": _synth_stamp(config),
    }
    header = "# Synthetic detection data set written by `jetkit data synth` (trainer/synth.py).\n"
    return header + yaml.safe_dump(document, sort_keys=False)


def _written_with(data_yaml: Path, config: SynthConfig) -> bool:
    """Whether `data_yaml` is one this module wrote with `config`."""
    import yaml

    try:
        document = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(document, dict) and document.get("synth") == _synth_stamp(config)


def write_synth_dataset(
    out_dir: Path,
    config: SynthConfig,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the data set (`images/{train,val}/*.jpg`, `labels/{train,val}/*.txt`, `data.yaml`)
    to `out_dir` and return the `data.yaml` path.

    All or nothing: the files go to a hidden sibling folder renamed into place at the end. A
    folder already holding this very data set (same config and generator version) is returned
    as it is; any other non-empty `out_dir` is refused. `progress(done, total)` is called after
    each image.
    """
    out_dir = Path(out_dir)
    data_yaml = out_dir / "data.yaml"
    if out_dir.exists():
        if data_yaml.is_file() and _written_with(data_yaml, config):
            return data_yaml
        if not out_dir.is_dir() or any(out_dir.iterdir()):
            raise JetkitError(
                f"{out_dir} already exists and is not a synthetic data set written with these "
                "settings; pick another --out or delete it"
            )
    tmp_dir = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        _render_splits(tmp_dir, config, progress)
        (tmp_dir / "data.yaml").write_text(_data_yaml(config), encoding="utf-8")
        os.replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return data_yaml


def _render_splits(
    root: Path, config: SynthConfig, progress: Callable[[int, int], None] | None
) -> None:
    counts = (config.train_images, config.val_images)
    total, done = sum(counts), 0
    for split_index, (split, count) in enumerate(zip(SPLITS, counts, strict=True)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for image_index in range(count):
            rng = np.random.default_rng((config.seed, split_index, image_index))
            size_wh = image_size(rng, config.imgsz)
            image, xyxy, class_ids = render_image(rng, size_wh)
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise JetkitError(f"OpenCV could not encode a {size_wh} JPEG image")
            stem = f"{image_index:06d}"
            (images / f"{stem}.jpg").write_bytes(encoded.tobytes())
            (labels / f"{stem}.txt").write_text(
                yolo_label_lines(xyxy, class_ids, size_wh), encoding="utf-8"
            )
            done += 1
            if progress is not None:
                progress(done, total)
