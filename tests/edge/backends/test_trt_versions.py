"""What each TensorRT version offers, decided in one place: the Python API, the builder's
precision and calibration paths, Q/DQ and I/O types, DLA."""

import pytest

from edge.backends import trt_versions
from edge.errors import JetkitError

# --- versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("8.6.1", (8, 6, 1)),
        ("8.5.2.2", (8, 5, 2, 2)),
        ("10.3.0.30", (10, 3, 0, 30)),
        ("10.13.0.35.post1", (10, 13, 0, 35)),
        (" 9 ", (9,)),
    ],
)
def test_parse_version(text: str, parsed: tuple[int, ...]) -> None:
    assert trt_versions.parse_version(text) == parsed


def test_parse_version_rejects_text_without_numbers() -> None:
    with pytest.raises(JetkitError, match="cannot read a version number from 'unknown'"):
        trt_versions.parse_version("unknown")


@pytest.mark.parametrize(
    ("version", "api"),
    [
        ("8.5.2.2", "bindings"),  # JetPack 5.1
        ("8.6.1", "bindings"),
        ("8.6.2.3", "bindings"),  # JetPack 5.1.2+
        ("9.3.0", "tensors"),
        ("10.0.1", "tensors"),
        ("10.3.0.30", "tensors"),  # JetPack 6
        ("11.0", "tensors"),
    ],
)
def test_api_for_version(version: str, api: str) -> None:
    assert trt_versions.api_for_version(version) == api


@pytest.mark.parametrize("version", ["8.4.1.5", "8.2.1", "7.1.3"])
def test_api_for_version_refuses_old_tensorrt(version: str) -> None:
    with pytest.raises(JetkitError, match=rf"TensorRT {version} is too old.*8\.5 or newer"):
        trt_versions.api_for_version(version)


@pytest.mark.parametrize(
    ("version", "explicit_batch_flag", "implicit_int8", "calibration_profile", "precision_flags"),
    [
        ("8.5.2.2", True, True, True, True),
        ("8.6.2.3", True, True, True, True),
        ("10.3.0.30", False, True, False, True),  # JetPack 6: calibration profile not called
        ("11.0.0.114", False, False, False, False),  # strongly typed only
        ("11.4.0.106", False, False, False, False),
    ],
)
def test_builder_gates(
    version, explicit_batch_flag, implicit_int8, calibration_profile, precision_flags
) -> None:
    features = trt_versions.features_for_version(version)
    assert features.explicit_batch_flag is explicit_batch_flag
    assert features.implicit_int8 is implicit_int8
    assert features.calibration_profile is calibration_profile
    assert features.precision_flags is precision_flags
    assert features.strongly_typed_only is not precision_flags


@pytest.mark.parametrize(
    ("version", "int8_weights", "fp8_int4", "int64_io"),
    [
        ("8.5.2", False, False, False),
        ("8.6.1", False, False, False),
        ("10.3.0", True, True, True),
        ("11.2.1", True, True, True),
    ],
)
def test_parser_gates(version, int8_weights, fp8_int4, int64_io) -> None:
    features = trt_versions.features_for_version(version)
    assert features.int8_weight_initializers is int8_weights
    assert features.fp8_int4_qdq is fp8_int4
    assert features.int64_io is int64_io


@pytest.mark.parametrize(
    ("version", "dla"),
    [
        ("8.5.2", True),
        ("10.3.0", True),
        ("11.0.0", False),
        ("11.3.0", False),
        ("11.4.0", False),
        ("11.4.1", True),
        ("11.5", True),
    ],
)
def test_dla_is_missing_from_tensorrt_11_0_to_11_4_0(version, dla) -> None:
    assert trt_versions.features_for_version(version).dla is dla


def test_implicit_int8_on_tensorrt_11_names_the_explicit_path() -> None:
    error = trt_versions.implicit_int8_removed(trt_versions.features_for_version("11.1"))
    assert "TensorRT 11.1 has no implicit INT8" in str(error)
    assert "--runtime tensorrt" in str(error)
