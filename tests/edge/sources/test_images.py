"""images:// and single stills: name order, one image per read, then the end."""

import cv2
import numpy as np
import pytest

from edge.errors import JetkitError
from edge.sources.base import SourceError
from edge.sources.images import ImagesSource
from edge.sources.uri import parse_source_uri

from .conftest import read_all


def solid(value: int) -> np.ndarray:
    return np.full((20, 30, 3), value, np.uint8)


@pytest.fixture
def stills(tmp_path):
    for name, value in (("b.png", 20), ("a.png", 10), ("c.png", 30)):
        cv2.imwrite(str(tmp_path / name), solid(value))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def opened(uri: str) -> ImagesSource:
    source = ImagesSource(parse_source_uri(uri))
    source.open()
    return source


def test_a_directory_gives_its_images_in_name_order_then_ends(stills):
    source = opened(f"images://{stills}")
    assert [int(image[0, 0, 0]) for image in read_all(source)] == [10, 20, 30]
    assert source.read() is None and source.live is False


def test_a_single_image_path_is_one_frame(scene_png, scene_bgr):
    frames = read_all(opened(str(scene_png)))
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0], scene_bgr)


def test_a_missing_or_empty_directory_fails_at_open(tmp_path):
    with pytest.raises(JetkitError, match=f"source 'images://{tmp_path}/none'.*does not exist"):
        opened(f"images://{tmp_path}/none")
    with pytest.raises(JetkitError, match="holds no images"):
        opened(f"images://{tmp_path}")


def test_a_corrupt_still_fails_its_read_and_the_next_one_follows(stills):
    (stills / "b.png").write_bytes(b"garbage")
    source = opened(f"images://{stills}")
    assert source.read()[0, 0, 0] == 10
    with pytest.raises(SourceError, match="b.png cannot be read"):
        source.read()
    assert source.read()[0, 0, 0] == 30


def test_close_ends_it(stills):
    source = opened(f"images://{stills}")
    source.close()
    assert source.read() is None
