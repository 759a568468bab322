"""The pure side of `jetkit build`: sizes, the build configuration, the INT8 mode, the batch
profile, the trtexec line, the engine key and the engine's manifest."""

from pathlib import Path

import pytest

from calibration.engine import (
    BuildConfig,
    EngineKey,
    batch_profile,
    calibration_batch_size,
    check_engine_path,
    default_engine_path,
    engine_manifest,
    int8_mode,
    parse_size_bytes,
    trtexec_command,
)
from edge.backends.trt_versions import features_for_version
from edge.errors import JetkitError
from edge.manifest import InputSpec, Manifest
from edge.samples import blob_manifest

KEY = EngineKey("ab" * 32, "int8", "10.3.0", "8.7", None, 8)


@pytest.mark.parametrize(
    ("text", "size_bytes"),
    [
        ("1G", 1 << 30),
        ("512M", 512 << 20),
        ("256MiB", 256 << 20),
        ("1.5g", 3 << 29),
        ("64KB", 64 << 10),
        ("1073741824", 1 << 30),
    ],
)
def test_sizes_take_binary_units(text, size_bytes):
    assert parse_size_bytes(text) == size_bytes


@pytest.mark.parametrize("text", ["1X", "", "-1G", "G", "1 G B"])
def test_a_bad_size_names_the_option(text):
    with pytest.raises(JetkitError, match="--workspace .* is not a size"):
        parse_size_bytes(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"precision": "int4"}, "--precision 'int4'"),
        ({"max_batch": 0}, "--max-batch must be >= 1"),
        ({"max_batch": 2, "opt_batch": 4}, "--opt-batch 4 is larger than --max-batch 2"),
        ({"workspace_bytes": 1 << 20}, "--workspace .* too small"),
        ({"dla_core": -1}, "--dla must be"),
        ({"dla_core": 0, "precision": "fp32"}, "DLA runs FP16 or INT8 only"),
        ({"calib_cache": Path("c.cache"), "precision": "fp16"}, "--calib-cache is for"),
    ],
)
def test_build_config_refuses_bad_values_by_option(changes, message):
    with pytest.raises(JetkitError, match=message):
        BuildConfig(**changes)


def test_int8_mode_follows_the_model_and_the_scales_given(tmp_path):
    model = Path("m.onnx")
    cache = tmp_path / "m.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\n")
    int8 = BuildConfig(precision="int8")
    assert int8_mode("onnx-int8-qdq", int8, False, model) == "explicit"
    assert int8_mode("onnx", BuildConfig(precision="int8", calib_cache=cache), False, model) == (
        "implicit"
    )
    assert int8_mode("onnx", int8, True, model) == "implicit"
    assert int8_mode("onnx", BuildConfig(precision="fp16"), False, model) is None
    assert int8_mode("onnx-fp16", BuildConfig(precision="fp16"), False, model) is None


@pytest.mark.parametrize(
    ("kind", "config", "has_data", "message"),
    [
        ("onnx-int8-qdq", BuildConfig(precision="fp16"), False, "build it with --precision int8"),
        ("onnx-int8-qdq", BuildConfig(precision="int8"), True, "drop --calib-cache/--data"),
        ("onnx", BuildConfig(precision="fp16"), True, "--data is for --precision int8 only"),
        ("onnx-fp16", BuildConfig(precision="int8"), False, "is an FP16 model"),
        ("onnx", BuildConfig(precision="int8"), False, "needs scales: --calib-cache"),
        (
            "onnx",
            BuildConfig(precision="int8", calib_cache=Path("/nonexistent/m.cache")),
            False,
            "needs scales",
        ),
    ],
)
def test_int8_mode_contradictions_say_what_to_pass(kind, config, has_data, message):
    with pytest.raises(JetkitError, match=message):
        int8_mode(kind, config, has_data, Path("m.onnx"))


def test_a_dynamic_batch_model_gets_a_profile_from_batch_1():
    spec = InputSpec(shape=(8, 3, 320, 256), dynamic_batch=True, max_batch=8)
    assert batch_profile(spec, BuildConfig()) == (
        (1, 3, 320, 256),
        (8, 3, 320, 256),
        (8, 3, 320, 256),
    )
    assert batch_profile(spec, BuildConfig(max_batch=16, opt_batch=4)) == (
        (1, 3, 320, 256),
        (4, 3, 320, 256),
        (16, 3, 320, 256),
    )
    with pytest.raises(JetkitError, match="--opt-batch 12 is larger than the max batch 8"):
        batch_profile(spec, BuildConfig(opt_batch=12))


def test_a_fixed_batch_model_needs_no_profile_and_refuses_another_batch():
    spec = InputSpec(shape=(1, 3, 640, 640))
    assert batch_profile(spec, BuildConfig()) is None
    assert batch_profile(spec, BuildConfig(max_batch=1)) is None
    with pytest.raises(JetkitError, match="fixed batch of 1, so --max-batch 4.*--dynamic-batch"):
        batch_profile(spec, BuildConfig(max_batch=4))


def test_trtexec_line_for_an_implicit_int8_dla_build():
    config = BuildConfig(
        precision="int8",
        workspace_bytes=256 << 20,
        dla_core=1,
        timing_cache=Path("t.cache"),
        calib_cache=Path("m.cache"),
    )
    profile = ((1, 3, 320, 320), (4, 3, 320, 320), (8, 3, 320, 320))
    command = trtexec_command(
        Path("m.onnx"), Path("m.engine"), config, "images", profile, "implicit", TRT10
    )
    assert command == [
        "trtexec",
        "--onnx=m.onnx",
        "--saveEngine=m.engine",
        "--fp16",
        "--int8",
        "--calib=m.cache",
        "--memPoolSize=workspace:256",
        "--minShapes=images:1x3x320x320",
        "--optShapes=images:4x3x320x320",
        "--maxShapes=images:8x3x320x320",
        "--useDLACore=1",
        "--allowGPUFallback",
        "--timingCacheFile=t.cache",
    ]


def explicit_int8_line(features):
    """The trtexec line of an explicit INT8 build of a Q/DQ model for `features`' TensorRT."""
    config = BuildConfig(precision="int8")
    return trtexec_command(
        Path("q.onnx"), Path("q.engine"), config, "x", None, "explicit", features
    )


def test_trtexec_line_for_fp32_and_explicit_int8_has_no_calibration():
    fp32 = trtexec_command(
        Path("m.onnx"), Path("m.engine"), BuildConfig(precision="fp32"), "images", None, None, TRT10
    )
    assert fp32 == [
        "trtexec",
        "--onnx=m.onnx",
        "--saveEngine=m.engine",
        "--memPoolSize=workspace:1024",
    ]
    explicit = explicit_int8_line(TRT10)
    assert "--int8" in explicit and not any(arg.startswith("--calib") for arg in explicit)


def test_trtexec_line_for_tensorrt_11_has_no_precision_flags():
    # TensorRT 11 is strongly typed: the Q/DQ or FP16 ONNX is the precision.
    explicit = explicit_int8_line(features_for_version("11.4.0"))
    assert not {"--int8", "--fp16"} & set(explicit)


def test_a_dla_build_gets_one_static_batch_the_manifests_max_by_default():
    spec = InputSpec(shape=(1, 3, 320, 320), dynamic_batch=True, max_batch=8)
    static = (8, 3, 320, 320)
    assert batch_profile(spec, BuildConfig(dla_core=0)) == (static, static, static)
    two = (2, 3, 320, 320)
    assert batch_profile(spec, BuildConfig(dla_core=1, batch=2)) == (two, two, two)
    assert batch_profile(spec, BuildConfig(batch=2)) == (two, two, two)
    with pytest.raises(JetkitError, match="--batch builds one static batch"):
        BuildConfig(batch=2, max_batch=4)
    fixed = InputSpec(shape=(1, 3, 320, 320))
    assert batch_profile(fixed, BuildConfig(dla_core=0)) is None
    with pytest.raises(JetkitError, match="fixed batch of 1, so --batch 2"):
        batch_profile(fixed, BuildConfig(batch=2))


def test_a_static_profile_makes_a_static_batch_engine_manifest(tmp_path):
    source_path = tmp_path / "blob.onnx"
    source_path.write_bytes(b"onnx bytes")
    source = blob_manifest((320, 320), max_batch=8, dynamic_batch=True, file_name="blob.onnx")
    config = BuildConfig(precision="fp16", dla_core=1, batch=2)
    engine = engine_manifest(
        source,
        source_path,
        tmp_path / "b.engine",
        config,
        KEY,
        None,
        batch_profile(source.input, config),
        {},
    )
    assert engine.input.shape == (2, 3, 320, 320)
    assert (engine.input.dynamic_batch, engine.input.max_batch) == (False, 2)
    assert engine.target.dla_core == 1


@pytest.mark.parametrize(
    ("version", "batch"),
    [("8.6.2", 1), ("10.3.0", 4)],  # 10: no calibration profile, TensorRT calibrates at opt
)
def test_implicit_calibration_batch_per_tensorrt(version, batch):
    dynamic = ((1, 3, 64, 64), (4, 3, 64, 64), (8, 3, 64, 64))
    assert calibration_batch_size(dynamic, 1, features_for_version(version)) == batch
    static = ((2, 3, 64, 64),) * 3
    assert calibration_batch_size(static, 1, features_for_version(version)) == 2
    assert calibration_batch_size(None, 3, features_for_version(version)) == 3


def test_implicit_int8_on_tensorrt_11_is_refused_with_the_explicit_path(tmp_path):
    cache = tmp_path / "m.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\n")
    config = BuildConfig(precision="int8", calib_cache=cache)
    model = Path("m.onnx")
    assert int8_mode("onnx", config, False, model, features_for_version("10.3")) == "implicit"
    with pytest.raises(JetkitError, match="TensorRT 11.0 has no implicit INT8.*--runtime tensorrt"):
        int8_mode("onnx", config, False, model, features_for_version("11.0"))
    qdq = BuildConfig(precision="int8")
    assert int8_mode("onnx-int8-qdq", qdq, False, model, features_for_version("11.0")) == "explicit"


TRT10 = features_for_version("10.3.0")


def test_engine_key_names_every_field_and_differs_when_any_does():
    assert KEY.name == "abababababababab-int8-b8-trt10.3.0-sm87-gpu"
    variants = [
        KEY,
        EngineKey("cd" * 32, "int8", "10.3.0", "8.7", None, 8),
        EngineKey("ab" * 32, "fp16", "10.3.0", "8.7", None, 8),
        EngineKey("ab" * 32, "int8", "8.6.2", "8.7", None, 8),
        EngineKey("ab" * 32, "int8", "10.3.0", "7.2", None, 8),
        EngineKey("ab" * 32, "int8", "10.3.0", "8.7", 0, 8),
        EngineKey("ab" * 32, "int8", "10.3.0", "8.7", None, 1),
        # Implicit INT8: the same FP32 ONNX recalibrated is another engine.
        EngineKey("ab" * 32, "int8", "10.3.0", "8.7", None, 8, calibration_sha256="ef" * 32),
        EngineKey("ab" * 32, "int8", "10.3.0", "8.7", None, 8, calibration_sha256="01" * 32),
    ]
    assert len({key.name for key in variants}) == len(variants)
    assert variants[7].name == "abababababababab-int8-cefefefefefef-b8-trt10.3.0-sm87-gpu"
    assert variants[5].name.endswith("-dla0")
    assert KEY.to_dict()["name"] == KEY.name


def test_default_engine_names_never_take_the_models_manifest():
    fp16 = BuildConfig(precision="fp16")
    assert default_engine_path(Path("d/model.onnx"), "fp32", fp16) == Path(
        "d/model-trt-fp16.engine"
    )
    int8_dla = BuildConfig(precision="int8", dla_core=0)
    assert default_engine_path(Path("d/model-int8.onnx"), "int8", int8_dla) == Path(
        "d/model-int8-trt-dla0.engine"
    )
    check_engine_path(Path("d/model-trt-fp16.engine"), Path("d/model.onnx"))
    with pytest.raises(JetkitError, match="would overwrite d/model.json, the manifest"):
        check_engine_path(Path("d/model.engine"), Path("d/model.onnx"))
    with pytest.raises(JetkitError, match="an engine file ends in .engine"):
        check_engine_path(Path("d/model.onnx2"), Path("d/model.onnx"))


def test_engine_manifest_records_target_key_and_batch_range(tmp_path):
    source_path = tmp_path / "blob.onnx"
    source_path.write_bytes(b"onnx bytes")
    source = blob_manifest((320, 320), max_batch=8, dynamic_batch=True, file_name="blob.onnx")
    config = BuildConfig(precision="int8", max_batch=4, dla_core=None)
    profile = batch_profile(source.input, config)
    engine = engine_manifest(
        source,
        source_path,
        tmp_path / "blob-trt-int8.engine",
        config,
        KEY,
        "36.4.0",
        profile,
        {"int8_mode": "implicit"},
    )
    assert engine.artifact.kind == "tensorrt" and engine.artifact.precision == "int8"
    assert engine.artifact.file == "blob-trt-int8.engine"
    assert (engine.input.max_batch, engine.input.dynamic_batch) == (4, True)
    assert engine.target.tensorrt == "10.3.0" and engine.target.compute_capability == "8.7"
    assert engine.target.l4t == "36.4.0" and engine.target.dla_core is None
    assert engine.provenance["engine"]["key"]["name"] == KEY.name
    assert engine.provenance["engine"]["int8_mode"] == "implicit"
    assert engine.provenance["source"]["file"] == str(source_path)
    assert engine.classes == source.classes and engine.preprocess == source.preprocess
    assert Manifest.from_dict(engine.to_dict()) == engine  # a valid manifest, round-tripped
