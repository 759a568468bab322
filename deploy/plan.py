"""What a flash will do on a device, decided from the bundle's index and the device's facts
before anything is sent: which model runs, whether an engine is needed, and whether one is in
the bundle or the device's cache. Pure functions; `preflight` raises the errors a user sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deploy.bundle_index import (
    ENGINES_DIR,
    MODELS_DIR,
    BundleIndex,
    BundleModel,
    check_release_name,
    member_path_problem,
)
from edge.backends.trt_versions import features_for_version, implicit_int8_removed
from edge.errors import JetkitError

PRECISIONS = ("fp32", "fp16", "int8")
# Room beyond the bundle itself: the extracted copy, an engine (about the ONNX's size at FP16,
# less at INT8) and TensorRT's build scratch files.
DISK_FACTOR = 3.0
DISK_SLACK_BYTES = 64 << 20
# What a TensorRT build holds besides its workspace: the parsed network, weights, CUDA context.
BUILD_SLACK_BYTES = 512 << 20


@dataclass(frozen=True)
class DeviceFacts:
    """What the device agent reports (`jetkit agent facts`)."""

    host: str
    jetkit_version: str
    machine: str | None
    l4t: str | None
    tensorrt: str | None
    compute_capability: str | None
    free_disk_bytes: int
    available_memory_bytes: int | None
    daemon: dict[str, Any] | None  # {"url", "running", "healthy", "model"}
    engines: tuple[str, ...] = ()  # engine cache keys present
    bundle_format: int = 1  # the newest bundle format its jetkit reads
    installed_content: tuple[tuple[str, str], ...] = ()  # (release, content digest) installed
    trusted_keys: tuple[str, ...] = ()  # public key lines of its trust store
    active: tuple[str, str] | None = None  # (name, version) of the active release

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceFacts:
        try:
            return cls(
                host=str(data["host"]),
                jetkit_version=str(data["jetkit_version"]),
                machine=data.get("machine"),
                l4t=data.get("l4t"),
                tensorrt=data.get("tensorrt"),
                compute_capability=data.get("compute_capability"),
                free_disk_bytes=int(data["free_disk_bytes"]),
                available_memory_bytes=data.get("available_memory_bytes"),
                daemon=data.get("daemon"),
                engines=tuple(data.get("engines", ())),
                bundle_format=int(data.get("bundle_format", 1)),
                installed_content=tuple(
                    (str(k), str(v)) for k, v in dict(data.get("installed_content", {})).items()
                ),
                trusted_keys=tuple(str(k) for k in data.get("trusted_keys", ())),
                active=(
                    (str(active["name"]), str(active["version"]))
                    if isinstance(active := data.get("active"), dict)
                    else None
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise JetkitError(
                f"the device's facts are incomplete ({exc}); update jetkit there"
            ) from None


@dataclass(frozen=True)
class ModelPlan:
    """`runtime` onnxruntime: run `model` (a bundle member). tensorrt: run the engine `key`
    built from `model` at `precision` (implicit INT8 with `calib_cache`), taken from the bundle
    (`prebuilt`), else the device cache (`cached`), else built there."""

    precision: str
    runtime: str
    model: str
    key: dict[str, Any] | None = None
    prebuilt: str | None = None
    cached: bool = False
    calib_cache: str | None = None

    @property
    def needs_build(self) -> bool:
        return self.runtime == "tensorrt" and self.prebuilt is None and not self.cached

    def describe(self) -> str:
        if self.runtime == "onnxruntime":
            return f"{self.model} on ONNX Runtime (no TensorRT on the device)"
        source = (
            f"prebuilt {self.prebuilt}"
            if self.prebuilt
            else "from the device's engine cache"
            if self.cached
            else "built on the device"
        )
        int8 = " (implicit INT8 from its calibration cache)" if self.calib_cache else ""
        assert self.key is not None
        return (
            f"TensorRT {self.precision} engine {self.key['name']} of {self.model}{int8}, {source}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "runtime": self.runtime,
            "model": self.model,
            "key": self.key,
            "prebuilt": self.prebuilt,
            "cached": self.cached,
            "calib_cache": self.calib_cache,
        }

    @classmethod
    def from_dict(cls, data: object) -> ModelPlan:
        """A plan sent to the device, checked: its paths are bundle members in their folders
        and its engine key names a file, so that no value reaches outside the release."""
        if not isinstance(data, dict):
            raise JetkitError("expected a plan object")
        precision, runtime = data.get("precision"), data.get("runtime")
        if precision not in PRECISIONS or runtime not in ("onnxruntime", "tensorrt"):
            raise JetkitError(f"plan precision {precision!r} or runtime {runtime!r} is unknown")
        members = {"model": MODELS_DIR, "prebuilt": ENGINES_DIR, "calib_cache": MODELS_DIR}
        paths = {}
        for field_name, folder in members.items():
            value = data.get(field_name)
            if value is None and field_name != "model":
                paths[field_name] = None
                continue
            if (
                not isinstance(value, str)
                or member_path_problem(value)
                or (not value.startswith(f"{folder}/"))
            ):
                raise JetkitError(f"plan {field_name} {value!r} is not a file in {folder}/")
            paths[field_name] = value
        key = data.get("key")
        if runtime == "tensorrt":
            if not isinstance(key, dict) or not isinstance(key.get("name"), str):
                raise JetkitError("a TensorRT plan needs an engine key with a name")
            check_release_name(key["name"], "engine key")
        elif key is not None:
            raise JetkitError("an ONNX Runtime plan has no engine key")
        cached = data.get("cached", False)
        if not isinstance(cached, bool):
            raise JetkitError(f"plan cached must be true or false, got {cached!r}")
        return cls(
            str(precision),
            str(runtime),
            paths["model"],
            key,
            paths["prebuilt"],
            cached,
            paths["calib_cache"],
        )


def engine_key(
    model: BundleModel,
    sha256: str,
    precision: str,
    facts: DeviceFacts,
    calibration_sha256: str | None = None,
) -> dict:
    """The engine key (`calibration.engine.EngineKey`) for building `model` on this device;
    `calibration_sha256` the calibration cache's for implicit INT8."""
    from calibration.engine import EngineKey

    assert facts.tensorrt and facts.compute_capability
    key = EngineKey(
        sha256,
        precision,
        facts.tensorrt,
        facts.compute_capability,
        None,
        model.max_batch,
        calibration_sha256,
    )
    return key.to_dict()


def _cache_member(index: BundleIndex, model: BundleModel) -> str | None:
    stem = model.file.rsplit("/", 1)[1].rsplit(".", 1)[0]
    wanted = f"models/{stem}.cache"
    caches = [m.path for m in index.members if m.role == "calibration-cache"]
    return wanted if wanted in caches else (caches[0] if len(caches) == 1 else None)


def plan_model(
    index: BundleIndex, precision: str, facts: DeviceFacts, engines_trusted: bool = True
) -> ModelPlan:
    """Which model the device will run at `precision`; raises JetkitError naming the fix when
    the bundle has nothing that runs there. A prebuilt engine of the bundle is used only when
    `engines_trusted` (the device trusts the bundle's signature); else it is built there."""
    if precision not in PRECISIONS:
        raise JetkitError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    fp32 = index.model("fp32")
    if not facts.tensorrt:
        model = index.model(precision)
        if model is None:
            raise JetkitError(
                f"{facts.host} has no TensorRT, so it runs ONNX models on ONNX Runtime, and "
                f"bundle {index.release} has no {precision} ONNX; add one (`jetkit calibrate "
                f"--precision {precision}`) or flash another --precision "
                f"({', '.join(m.precision for m in index.models)})"
            )
        return ModelPlan(precision, "onnxruntime", model.file)
    if not facts.compute_capability:
        raise JetkitError(
            f"{facts.host} has TensorRT {facts.tensorrt} but its GPU's compute capability could "
            "not be read (is CUDA working there? try `jetkit bench` on the device)"
        )
    features = features_for_version(facts.tensorrt)
    calib_cache = None
    if precision == "int8":
        qdq = index.model("int8")
        if qdq is not None and qdq.runtime != "cpu":
            source = qdq
        elif fp32 is not None and (calib_cache := _cache_member(index, fp32)):
            if not features.implicit_int8:
                raise implicit_int8_removed(features)
            source = fp32
        else:
            raise JetkitError(
                f"bundle {index.release} has no INT8 model for TensorRT: add a Q/DQ ONNX made "
                "with `jetkit calibrate --precision int8 --runtime tensorrt`, or its calibration "
                "cache beside the FP32 ONNX"
            )
    elif features.strongly_typed_only:
        # TensorRT 11 builds the model's own types: an FP16 engine needs the FP16 ONNX.
        source = index.model(precision)
        if source is None:
            raise JetkitError(
                f"{facts.host} has TensorRT {facts.tensorrt}, which builds a model in its own "
                f"precision, and bundle {index.release} has no {precision.upper()} ONNX; add "
                f"one (`jetkit calibrate --precision {precision}`) and bundle again, or flash "
                "--precision fp32"
            )
    else:
        # FP16 engines build from the FP32 ONNX (TensorRT picks FP16 kernels per layer).
        source = fp32 or index.model(precision)
        if source is None:
            raise JetkitError(f"bundle {index.release} has no FP32 ONNX to build an engine from")
    calibration_sha256 = index.member(calib_cache).sha256 if calib_cache else None
    key = engine_key(source, index.member(source.file).sha256, precision, facts, calibration_sha256)
    prebuilt = next((e.file for e in index.engines if e.key.get("name") == key["name"]), None)
    prebuilt = prebuilt if engines_trusted else None
    cached = prebuilt is None and key["name"] in facts.engines
    return ModelPlan(precision, "tensorrt", source.file, key, prebuilt, cached, calib_cache)


AUTO = "auto"


def install_version(index: BundleIndex, facts: DeviceFacts, force: bool) -> tuple[str, bool]:
    """The version the bundle is installed as on the device, and whether that release is
    there already with the same files. A release of the same name and version with other
    files is refused (its engine, its cache key, what rollback returns to would all be
    ambiguous) unless `force`: then it goes beside, as `VERSION+<content digest>`. Pure."""
    installed = dict(facts.installed_content)
    digest = index.content_digest()
    if installed.get(index.release) in (None, digest):
        return index.version, index.release in installed
    if not force:
        raise JetkitError(
            f"{facts.host} has release {index.release} installed with other content (a bundle "
            "of the same name and version, built again); give the new bundle a new version, "
            f"or flash --force to install it as {index.version}+{digest[:12]} and activate it"
        )
    version = f"{index.version}+{digest[:12]}"
    check_release_name(version, "version")
    forced = installed.get(f"{index.name}-{version}")
    if forced not in (None, digest):
        raise JetkitError(f"{facts.host} holds a corrupt release {index.name}-{version}; remove it")
    return version, forced is not None


def choose_precision(
    index: BundleIndex, facts: DeviceFacts, gate_passed: Mapping[str, bool]
) -> tuple[str, str]:
    """`--precision auto`: what to flash to this device, and why (the preflight says it).

    With TensorRT, FP16: every Jetson GPU runs it at about twice FP32's speed with no
    calibration to trust. Without, ONNX Runtime on the CPU: the bundle's INT8 ONNX in the CPU
    format where its accuracy-gate report (`gate_passed`, by model member) says it passed,
    else FP32 (an FP16 ONNX runs no faster there), else what the bundle has."""
    if facts.tensorrt:
        trt = f"TensorRT {facts.tensorrt} is on {facts.host}"
        if features_for_version(facts.tensorrt).strongly_typed_only and not index.model("fp16"):
            return (
                "fp32",
                f"{trt}, which builds the model's own types, and the bundle has no FP16 ONNX",
            )
        return "fp16", f"{trt}: an FP16 engine"
    cpu = f"no TensorRT on {facts.host}, so ONNX Runtime on its CPU"
    int8 = index.model("int8")
    if int8 is not None and int8.runtime == "cpu" and gate_passed.get(int8.file):
        return "int8", f"{cpu}, and the bundle's INT8 ONNX for the CPU passed its accuracy gate"
    for precision in ("fp32", "fp16", "int8"):
        if index.model(precision) is not None:
            return precision, f"{cpu}: the bundle's {precision.upper()} ONNX" + (
                "" if precision == "fp32" else " (it has no FP32 one)"
            )
    raise JetkitError(f"bundle {index.release} holds no ONNX model; make it with `jetkit bundle`")


def disk_needed_bytes(index: BundleIndex) -> int:
    return int(sum(m.size_bytes for m in index.members) * DISK_FACTOR) + DISK_SLACK_BYTES


def preflight(
    index: BundleIndex,
    precision: str,
    facts: DeviceFacts,
    installed: bool = False,
    workspace: str = "1G",
    engines_trusted: bool = False,
) -> ModelPlan:
    """The plan, once the device can take the bundle: disk for the upload, the extracted copy
    and an engine (not counted for a release already installed there), and for an engine build
    memory for TensorRT's workspace. Prebuilt engines only where `engines_trusted`."""
    if index.format_version > facts.bundle_format:
        raise JetkitError(
            f"{facts.host} runs jetkit {facts.jetkit_version}, which reads bundles up to format "
            f"{facts.bundle_format}, and {index.release} is format {index.format_version}; "
            "upgrade jetkit on the device"
        )
    plan = plan_model(index, precision, facts, engines_trusted)
    needed = 0 if installed else disk_needed_bytes(index)
    if facts.free_disk_bytes < needed:
        raise JetkitError(
            f"{facts.host} has {facts.free_disk_bytes / 2**20:.0f} MiB free, and bundle "
            f"{index.release} needs about {needed / 2**20:.0f} MiB; free space there or "
            "lower --keep"
        )
    if plan.needs_build and facts.available_memory_bytes is not None:
        from calibration.engine import parse_size_bytes

        wanted = parse_size_bytes(workspace) + BUILD_SLACK_BYTES
        if facts.available_memory_bytes < wanted:
            raise JetkitError(
                f"{facts.host} has {facts.available_memory_bytes / 2**20:.0f} MiB of memory "
                f"available, and building the engine with --workspace {workspace} needs about "
                f"{wanted / 2**20:.0f} MiB; lower --workspace or stop what else runs there"
            )
    return plan
