"""Reading still images for `jetkit detect` and friends, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import JetkitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(paths: list[str]) -> list[Path]:
    """Expand files and directories (sorted, images only, not recursive) into image paths."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise JetkitError(f"directory {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(images)
        elif path.is_file():
            found.append(path)
        else:
            raise JetkitError(f"image {path} does not exist")
    return found


def read_image(path: Path) -> np.ndarray:
    """The image as 8-bit BGR `(H,W,3)`; grayscale and alpha images are converted."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise JetkitError(f"image {path} cannot be read (not an image, or corrupt)")
    return image
