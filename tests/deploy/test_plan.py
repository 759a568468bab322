"""The flash plan, decided before anything is sent: ONNX Runtime devices run the ONNX of the asked
precision; TensorRT devices run an engine taken from the bundle, the device cache, or built there
(explicit INT8 from a TensorRT Q/DQ model, implicit from the FP32 model and its cache); a bundle
that cannot run there, or a device short of disk, is refused with the fix."""

from __future__ import annotations

import pytest

from deploy.bundle_index import BundleEngine, BundleIndex, BundleModel, Member
from deploy.plan import (
    DeviceFacts,
    ModelPlan,
    choose_precision,
    engine_key,
    install_version,
    plan_model,
    preflight,
)
from edge.errors import JetkitError

SHA = {name: f"{k:x}" * 64 for k, name in enumerate(("fp32", "fp16", "int8", "cache"), 1)}


def _index(int8_runtime="tensorrt", cache=True, engines=()):
    models = [
        BundleModel("models/m.onnx", "models/m.json", "onnx", "fp32", 8),
        BundleModel("models/m-fp16.onnx", "models/m-fp16.json", "onnx-fp16", "fp16", 8),
    ]
    if int8_runtime:
        models.append(
            BundleModel("models/m-int8.onnx", "models/m-int8.json", "onnx-int8-qdq", "int8", 8,
                        int8_runtime)
        )  # fmt: skip
    members = [Member(m.file, SHA[m.precision], 10 << 20, "model") for m in models]
    members += [Member(m.manifest, "0" * 64, 1000, "manifest") for m in models]
    if cache:
        members.append(Member("models/m.cache", SHA["cache"], 2000, "calibration-cache"))
    members += [Member(e.file, "9" * 64, 5 << 20, "engine") for e in engines]
    members += [Member(e.manifest, "8" * 64, 1000, "manifest") for e in engines]
    return BundleIndex("m", "1.0", tuple(members), tuple(models), tuple(engines))


def _facts(tensorrt="10.3.0", cc="8.7", free=10 << 30, engines=(), installed_content=None):
    return DeviceFacts(
        host="orin",
        jetkit_version="0.1.0",
        machine="aarch64",
        l4t="36.4.0" if tensorrt else None,
        tensorrt=tensorrt,
        compute_capability=cc if tensorrt else None,
        free_disk_bytes=free,
        available_memory_bytes=8 << 30,
        daemon=None,
        engines=tuple(engines),
        installed_content=tuple((installed_content or {}).items()),
    )


def test_without_tensorrt_the_onnx_of_that_precision_runs():
    plan = plan_model(_index(), "int8", _facts(tensorrt=None))
    assert (plan.runtime, plan.model, plan.needs_build) == (
        "onnxruntime",
        "models/m-int8.onnx",
        False,
    )
    with pytest.raises(JetkitError, match="no int8 ONNX.*jetkit calibrate --precision int8"):
        plan_model(_index(int8_runtime=None), "int8", _facts(tensorrt=None))


def test_fp16_engines_build_from_the_fp32_model_keyed_for_this_device():
    plan = plan_model(_index(), "fp16", _facts())
    assert plan.runtime == "tensorrt" and plan.model == "models/m.onnx" and plan.needs_build
    assert plan.key["onnx_sha256"] == SHA["fp32"]
    assert plan.key["name"] == f"{SHA['fp32'][:16]}-fp16-b8-trt10.3.0-sm87-gpu"
    assert "built on the device" in plan.describe()


def test_an_engine_in_the_bundle_or_the_cache_is_not_built_again():
    key = plan_model(_index(), "fp16", _facts()).key
    other = dict(key, name="another-device-key")
    engines = (
        BundleEngine("engines/other.engine", "engines/other.json", other),
        BundleEngine("engines/m.engine", "engines/m.json", key),
    )
    prebuilt = plan_model(_index(engines=engines), "fp16", _facts())
    assert prebuilt.prebuilt == "engines/m.engine" and not prebuilt.needs_build
    cached = plan_model(_index(), "fp16", _facts(engines=[key["name"]]))
    assert cached.cached and not cached.needs_build and "engine cache" in cached.describe()
    elsewhere = plan_model(_index(engines=engines[:1]), "fp16", _facts(cc="7.2"))
    assert elsewhere.prebuilt is None and elsewhere.needs_build  # built for another GPU
    untrusted = plan_model(_index(engines=engines), "fp16", _facts(), engines_trusted=False)
    assert untrusted.prebuilt is None and untrusted.needs_build  # an unsigned bundle's engine


def test_a_plan_from_the_host_round_trips_and_a_hostile_one_is_refused():
    plan = plan_model(_index(), "fp16", _facts())
    assert ModelPlan.from_dict(plan.to_dict()) == plan
    for hostile in (
        {**plan.to_dict(), "model": "../../etc/passwd"},
        {**plan.to_dict(), "prebuilt": "models/m.onnx"},
        {**plan.to_dict(), "calib_cache": "/etc/shadow"},
        {**plan.to_dict(), "key": {"name": "../engine"}},
        {**plan.to_dict(), "runtime": "shell"},
        {**plan.to_dict(), "cached": "yes"},
        "plan",
    ):
        with pytest.raises(JetkitError):
            ModelPlan.from_dict(hostile)


def test_a_release_installed_with_other_files_is_refused_unless_forced():
    index = _index()
    same = _facts(installed_content={index.release: index.content_digest()})
    assert install_version(index, same, force=False) == (index.version, True)
    assert install_version(index, _facts(), force=False) == (index.version, False)
    other = _facts(installed_content={index.release: "0" * 64})
    with pytest.raises(JetkitError, match="installed with other content"):
        install_version(index, other, force=False)
    forced = f"{index.version}+{index.content_digest()[:12]}"
    assert install_version(index, other, force=True) == (forced, False)
    again = _facts(installed_content={index.release: "0" * 64,
                                      f"{index.name}-{forced}": index.content_digest()})  # fmt: skip
    assert install_version(index, again, force=True) == (forced, True)


def test_int8_is_explicit_from_a_tensorrt_qdq_model_else_implicit_from_the_cache():
    explicit = plan_model(_index(), "int8", _facts())
    assert explicit.model == "models/m-int8.onnx" and explicit.calib_cache is None
    implicit = plan_model(_index(int8_runtime="cpu"), "int8", _facts())
    assert implicit.model == "models/m.onnx" and implicit.calib_cache == "models/m.cache"
    assert implicit.key["onnx_sha256"] == SHA["fp32"] and implicit.key["precision"] == "int8"
    with pytest.raises(JetkitError, match="--runtime tensorrt"):
        plan_model(_index(int8_runtime="cpu", cache=False), "int8", _facts())


def test_preflight_refuses_a_device_without_room_or_a_readable_gpu():
    with pytest.raises(JetkitError, match=r"orin has 50 MiB free.*needs about \d+ MiB"):
        preflight(_index(), "fp16", _facts(free=50 << 20))
    assert preflight(_index(), "fp16", _facts(free=50 << 20), installed=True).needs_build
    with pytest.raises(JetkitError, match="compute capability could not be read"):
        plan_model(_index(), "fp16", _facts(cc=None))
    with pytest.raises(JetkitError, match="--precision must be one of"):
        plan_model(_index(), "bf16", _facts())


def test_engine_keys_match_the_ones_jetkit_build_writes():
    from calibration.engine import EngineKey

    model = _index().models[0]
    key = engine_key(model, SHA["fp32"], "fp16", _facts())
    assert key == EngineKey(SHA["fp32"], "fp16", "10.3.0", "8.7", None, 8).to_dict()


def test_preflight_refuses_a_bundle_newer_than_the_devices_jetkit_reads():
    import dataclasses

    old_device = dataclasses.replace(_facts(), bundle_format=0)
    with pytest.raises(JetkitError, match="reads bundles up to format 0.*upgrade jetkit"):
        preflight(_index(), "fp16", old_device)


def test_preflight_refuses_an_engine_build_without_memory_for_its_workspace():
    import dataclasses

    small = dataclasses.replace(_facts(), available_memory_bytes=1 << 30)
    with pytest.raises(JetkitError, match=r"1024 MiB of memory available.*--workspace 1G"):
        preflight(_index(), "fp16", small, workspace="1G")
    assert preflight(_index(), "fp16", small, workspace="256M").needs_build
    key = plan_model(_index(), "fp16", small).key
    cached = dataclasses.replace(small, engines=(key["name"],))
    assert preflight(_index(), "fp16", cached, workspace="1G").cached  # nothing to build


def test_the_default_precision_follows_the_device():
    """`--precision auto`: FP16 engines where TensorRT is; on ONNX Runtime's CPU the INT8 ONNX
    only when it is in the CPU format and its gate report passed, else FP32."""
    int8 = "models/m-int8.onnx"
    cpu = _facts(tensorrt=None)
    assert choose_precision(_index("cpu"), _facts(), {int8: True})[0] == "fp16"
    precision, why = choose_precision(_index("cpu"), cpu, {int8: True})
    assert precision == "int8" and "no TensorRT on orin" in why and "passed" in why
    assert choose_precision(_index("cpu"), cpu, {int8: False})[0] == "fp32"
    assert choose_precision(_index("cpu"), cpu, {})[0] == "fp32"  # never gated
    assert choose_precision(_index("tensorrt"), cpu, {int8: True})[0] == "fp32"
    only_fp16 = _index(None)
    only_fp16 = BundleIndex("m", "1.0", only_fp16.members, only_fp16.models[1:], ())
    precision, why = choose_precision(only_fp16, cpu, {})
    assert precision == "fp16" and "no FP32" in why


def test_an_implicit_int8_engine_is_keyed_by_its_calibration_cache():
    implicit = plan_model(_index(int8_runtime="cpu"), "int8", _facts())
    assert implicit.key["calibration_sha256"] == SHA["cache"]
    assert f"-int8-c{SHA['cache'][:12]}-" in implicit.key["name"]
    explicit = plan_model(_index(), "int8", _facts())
    # Explicit INT8 carries its scales in the Q/DQ model, whose digest is the key's.
    assert explicit.key["onnx_sha256"] == SHA["int8"] and explicit.key["calibration_sha256"] is None


def test_tensorrt_11_builds_each_precision_from_its_own_onnx():
    fp16 = plan_model(_index(), "fp16", _facts(tensorrt="11.4.1"))
    assert fp16.model == "models/m-fp16.onnx"
    with pytest.raises(JetkitError, match="TensorRT 11.0 has no implicit INT8"):
        plan_model(_index(int8_runtime="cpu"), "int8", _facts(tensorrt="11.0"))
    assert plan_model(_index(), "int8", _facts(tensorrt="11.0")).model == "models/m-int8.onnx"


def test_auto_on_tensorrt_11_without_an_fp16_onnx_flashes_fp32():
    index = _index()
    no_fp16 = BundleIndex("m", "1.0", index.members, (index.models[0], index.models[2]), ())
    precision, why = choose_precision(no_fp16, _facts(tensorrt="11.4.1"), {})
    assert precision == "fp32" and "own types" in why
    assert choose_precision(index, _facts(tensorrt="11.4.1"), {})[0] == "fp16"
