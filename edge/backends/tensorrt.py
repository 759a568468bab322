"""TensorRT backend: runs a serialized engine (`.engine`/`.plan`, raw or with an Ultralytics
header) on one CUDA device.

TensorRT 8.5–8.x is driven through its bindings API and 9/10.x through its tensor API; which
one is decided once, by `trt_versions.api_for_version`. Host buffers are page-locked and allocated
once for the profile's maximum batch, with their device twins; every call runs on one CUDA
stream: async host→device copies, execute, async device→host copies, synchronize, with CUDA
events between the stages for `last_stages_ms`. CUDA comes from pycuda, or from cuda-python's
runtime bindings where pycuda is absent.

`tensorrt`, `pycuda` and `cuda` are imported inside functions only: importing this module needs
neither. All shape arithmetic and validation lives in `trt_plan`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edge.backends import trt_plan, trt_versions
from edge.backends.base import Dim, TensorSpec
from edge.backends.trt_plan import IOPlan, Shape, TensorInfo
from edge.errors import JetkitError

if TYPE_CHECKING:
    import tensorrt as trt

_NOT_INSTALLED = (
    "TensorRT is not installed here; use the onnxruntime backend (`--backend onnxruntime` with "
    "the .onnx model), or run on a Jetson with JetPack's TensorRT"
)


def tensorrt_missing() -> str | None:
    """Why TensorRT cannot run here (a sentence for an error message), or None when it can."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the bindings are there, libnvinfer is not
        return str(exc)
    # PyPI's tensorrt-stubs, or an empty namespace package, import without the runtime.
    if not hasattr(trt, "Runtime"):
        return "only type stubs of `tensorrt` are installed"
    return None


def require_tensorrt() -> str:
    """The installed TensorRT version; JetkitError when there is no usable TensorRT."""
    reason = tensorrt_missing()
    if reason is not None:
        raise JetkitError(f"{_NOT_INSTALLED} ({reason})")
    import tensorrt as trt

    return trt.__version__


class TensorRTBackend:
    """A TensorRT engine behind the `Backend` interface.

    `infer` takes one array per input, e.g. `(B, 3, H, W)` float32 images, with `B` within the
    engine's optimisation profile, and returns new arrays, one per output, in engine order.
    `metadata` holds an Ultralytics header's values in the form of ONNX `metadata_props` (empty
    for a raw plan; `header` keeps the JSON as read). `precision` is recorded for `describe`
    only: the plan does not say how it was built, the manifest does.
    """

    name = "tensorrt"
    on_host_cpu = False

    def __init__(
        self,
        path: str | Path,
        device: int = 0,
        precision: str | None = None,
        dla_core: int | None = None,
    ) -> None:
        self.version = require_tensorrt()
        self.path = Path(path)
        self.device = device
        self.precision = precision
        self.last_stages_ms: dict[str, float] = {}
        if not self.path.is_file():
            raise JetkitError(
                f"engine file {self.path} not found; build one on this device with `jetkit build`"
            )
        self.header, plan_bytes = trt_plan.split_engine_file(self.path.read_bytes())
        self.metadata = trt_plan.header_metadata_props(self.header or {})
        self.dla_core = trt_plan.runtime_dla_core(
            dla_core, _manifest_dla_core(self.path), self.header
        )
        self._api = trt_versions.api_for_version(self.version)
        self._cuda = open_cuda(device)
        self._plans: dict[int, IOPlan] = {}
        self._bound_batch: int | None = None
        self._closed = False
        try:
            with self._cuda.current():
                self._open_engine(plan_bytes)
        except BaseException:
            self._cuda.close()  # a failed open leaves no stream, buffers or context behind
            raise
        self.inputs = tuple(_spec(t) for t in self._tensors if t.is_input)
        self.outputs = tuple(_spec(t) for t in self._tensors if not t.is_input)

    def infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if self._closed:
            raise JetkitError("the TensorRT backend is closed; open the engine again")
        batch = trt_plan.check_inputs(self._tensors, arrays)
        plan = self._plan(batch)
        trt_plan.check_input_shapes(plan, self._tensors, [a.shape for a in arrays])
        inputs = [t for t in self._tensors if t.is_input]
        outputs = [t for t in self._tensors if not t.is_input]
        cuda = self._cuda
        with cuda.current():
            if batch != self._bound_batch:
                self._io.set_input_shapes(_dynamic_input_shapes(self._tensors, plan))
                self._bound_batch = batch
            for tensor, array in zip(inputs, arrays, strict=True):
                np.copyto(self._view(plan, tensor), array, casting="same_kind")
            start, after_h2d, after_compute, after_d2h = self._events
            cuda.record(start)
            for tensor in inputs:
                cuda.copy_h2d_async(self._io.address(tensor.name), self._view(plan, tensor))
            cuda.record(after_h2d)
            if not self._io.execute(cuda.stream_handle):
                raise RuntimeError(f"TensorRT failed to run {self.path}; see its log above")
            cuda.record(after_compute)
            for tensor in outputs:
                cuda.copy_d2h_async(self._view(plan, tensor), self._io.address(tensor.name))
            cuda.record(after_d2h)
            cuda.synchronize()
            self.last_stages_ms = {
                "h2d": cuda.elapsed_ms(start, after_h2d),
                "compute": cuda.elapsed_ms(after_h2d, after_compute),
                "d2h": cuda.elapsed_ms(after_compute, after_d2h),
            }
        # Copies: the page-locked buffers are overwritten by the next call.
        return [self._view(plan, t).copy() for t in outputs]

    def describe(self) -> dict[str, object]:
        return {
            "backend": self.name,
            "version": self.version,
            "api": self._api,
            "cuda": self._cuda.library,
            **self._cuda.device_facts(),
            "precision": self.precision,
            "engine": str(self.path),
            "batch_range": (self._min_batch, self._max_batch),
            "ultralytics_header": self.header is not None,
            "dla_core": self.dla_core,
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cuda.current():
            # TensorRT objects go before the memory and the CUDA context they use.
            del self._io, self._context, self._engine, self._runtime, self._host, self._events
        self._cuda.close()

    def _open_engine(self, plan_bytes: bytes) -> None:
        self._runtime, self._engine = _deserialize(plan_bytes, self.dla_core, self.path)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise JetkitError(
                f"TensorRT could not create an execution context for {self.path} (out of GPU "
                "memory?); close other GPU programs or rebuild with a smaller workspace"
            )
        self._io = _engine_io(self._api, self._engine, self._context)
        self._tensors = _resolve_outputs(self._io)
        self._min_batch, self._max_batch = trt_plan.batch_range(self._tensors)
        self._host, device_ptrs = self._allocate(self._plan(self._max_batch))
        self._io.bind(device_ptrs)
        self._events = [self._cuda.new_event() for _ in range(4)]

    def _plan(self, batch: int) -> IOPlan:
        if batch not in self._plans:
            self._plans[batch] = trt_plan.plan_io(self._tensors, batch)
        return self._plans[batch]

    def _allocate(self, max_plan: IOPlan) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        host: dict[str, np.ndarray] = {}
        device_ptrs: dict[str, int] = {}
        for tensor in self._tensors:
            size_bytes = max_plan.buffer_size_bytes[tensor.name]
            host[tensor.name] = self._cuda.pinned_empty(size_bytes, tensor.dtype)
            device_ptrs[tensor.name] = self._cuda.device_alloc(size_bytes)
        return host, device_ptrs

    def _view(self, plan: IOPlan, tensor: TensorInfo) -> np.ndarray:
        """The front of `tensor`'s flat page-locked buffer, shaped as `plan` says."""
        flat = self._host[tensor.name]
        count = plan.size_bytes[tensor.name] // flat.itemsize
        return flat[:count].reshape(plan.shapes[tensor.name])


def _spec(tensor: TensorInfo) -> TensorSpec:
    shape: tuple[Dim, ...] = tuple(None if d < 0 else d for d in tensor.shape)
    return TensorSpec(tensor.name, shape, tensor.dtype)


@functools.cache
def trt_logger() -> trt.ILogger:
    import tensorrt as trt

    # One logger per process: TensorRT warns when runtimes and builders get different ones.
    return trt.Logger(trt.Logger.WARNING)


def _manifest_dla_core(path: Path) -> int | None:
    """`target.dla_core` of the engine's sidecar manifest, when it has one."""
    from edge.manifest import load_manifest, sidecar_path

    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    target = load_manifest(sidecar).target
    return target.dla_core if target is not None else None


def _deserialize(
    plan: bytes, dla_core: int | None, path: Path
) -> tuple[trt.Runtime, trt.ICudaEngine]:
    import tensorrt as trt

    runtime = trt.Runtime(trt_logger())
    if dla_core is not None:
        runtime.DLA_core = dla_core
    engine = runtime.deserialize_cuda_engine(plan)
    # The stubs say ICudaEngine; the binding returns None when the plan does not fit
    # ("Version tag does not match", "generated on an incompatible device").
    if engine is None:
        raise JetkitError(
            f"TensorRT {trt.__version__} cannot load {path}: it was built for another TensorRT "
            "version or GPU; rebuild it on this device with `jetkit build` (the TensorRT log "
            "above has the reason)"
        )
    return runtime, engine


class _EngineIO(Protocol):
    """What the backend needs from one of TensorRT's two I/O APIs."""

    def declared_tensors(self) -> list[TensorInfo]: ...

    def set_input_shapes(self, shapes: dict[str, Shape]) -> None: ...

    def context_shape(self, name: str) -> Shape: ...

    def bind(self, device_ptrs: dict[str, int]) -> None: ...

    def address(self, name: str) -> int: ...

    def execute(self, stream_handle: int) -> bool: ...


def _engine_io(
    api: trt_versions.ApiKind, engine: trt.ICudaEngine, context: trt.IExecutionContext
) -> _EngineIO:
    if api == "tensors":
        return _TensorsIO(engine, context)
    return _BindingsIO(engine, context)


def _dynamic_input_shapes(tensors: Sequence[TensorInfo], plan: IOPlan) -> dict[str, Shape]:
    return {t.name: plan.shapes[t.name] for t in tensors if t.is_input and t.is_dynamic}


def _resolve_outputs(io: _EngineIO) -> list[TensorInfo]:
    """Declared tensors, with output dimensions other than batch that depend on input shapes
    (e.g. the anchor count of a model with dynamic H, W) read from TensorRT at the largest batch."""
    declared = io.declared_tensors()
    inputs = [t for t in declared if t.is_input]
    max_plan = trt_plan.plan_io(inputs, trt_plan.batch_range(inputs)[1])
    io.set_input_shapes(_dynamic_input_shapes(inputs, max_plan))
    resolved = []
    for tensor in declared:
        if not tensor.is_input:
            shape = trt_plan.resolve_output_shape(tensor.shape, io.context_shape(tensor.name))
            tensor = replace(tensor, shape=shape)
        resolved.append(tensor)
    return resolved


def _shape(dims: trt.Dims | Sequence[int]) -> Shape:
    return tuple(int(dims[i]) for i in range(len(dims)))


class _TensorsIO:
    """TensorRT 9/10.x: I/O addressed by tensor name (NVIDIA/TensorRT
    samples/python/common_runtime.py `allocate_buffers`, `do_inference`)."""

    def __init__(self, engine: trt.ICudaEngine, context: trt.IExecutionContext) -> None:
        self._engine = engine
        self._context = context
        self._names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._addresses: dict[str, int] = {}

    def declared_tensors(self) -> list[TensorInfo]:
        import tensorrt as trt

        tensors = []
        for name in self._names:
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = _shape(self._engine.get_tensor_shape(name))
            profile = None
            if is_input and any(d < 0 for d in shape):
                low, opt, high = self._engine.get_tensor_profile_shape(name, 0)
                profile = (_shape(low), _shape(opt), _shape(high))
            dtype = trt_plan.numpy_dtype_name(str(self._engine.get_tensor_dtype(name)))
            tensors.append(TensorInfo(name, is_input, shape, dtype, profile))
        return tensors

    def set_input_shapes(self, shapes: dict[str, Shape]) -> None:
        for name, shape in shapes.items():
            if not self._context.set_input_shape(name, shape):
                raise JetkitError(f"TensorRT rejected shape {shape} for input '{name}'")

    def context_shape(self, name: str) -> Shape:
        return _shape(self._context.get_tensor_shape(name))

    def bind(self, device_ptrs: dict[str, int]) -> None:
        self._addresses = dict(device_ptrs)
        for name, ptr in device_ptrs.items():
            self._context.set_tensor_address(name, ptr)

    def address(self, name: str) -> int:
        return self._addresses[name]

    def execute(self, stream_handle: int) -> bool:
        return self._context.execute_async_v3(stream_handle)


class _BindingsIO:
    """TensorRT 8.5–8.x: I/O addressed by binding index. No stubs describe this API, so the
    engine and context are `Any`; calls as in NVIDIA/TensorRT release/8.6
    samples/python/common.py and tools/Polygraphy/polygraphy/backend/trt/runner.py."""

    def __init__(self, engine: Any, context: Any) -> None:
        self._engine = engine
        self._context = context
        # Each optimisation profile has its own copy of the bindings; profile 0's come first
        # (polygraphy/backend/trt/util.py `get_bindings_per_profile`).
        count = engine.num_bindings // engine.num_optimization_profiles
        self._names = [str(engine.get_binding_name(i)) for i in range(count)]
        self._index = {name: i for i, name in enumerate(self._names)}
        self._pointers = [0] * count

    def declared_tensors(self) -> list[TensorInfo]:
        engine = self._engine
        tensors = []
        for index, name in enumerate(self._names):
            is_input = bool(engine.binding_is_input(index))
            shape = _shape(engine.get_binding_shape(index))
            profile = None
            if is_input and any(d < 0 for d in shape):
                # get_profile_shape(profile_index, binding) → [min, opt, max]
                low, opt, high = engine.get_profile_shape(0, index)
                profile = (_shape(low), _shape(opt), _shape(high))
            dtype = trt_plan.numpy_dtype_name(str(engine.get_binding_dtype(index)))
            tensors.append(TensorInfo(name, is_input, shape, dtype, profile))
        return tensors

    def set_input_shapes(self, shapes: dict[str, Shape]) -> None:
        for name, shape in shapes.items():
            if not self._context.set_binding_shape(self._index[name], shape):
                raise JetkitError(f"TensorRT rejected shape {shape} for input '{name}'")

    def context_shape(self, name: str) -> Shape:
        return _shape(self._context.get_binding_shape(self._index[name]))

    def bind(self, device_ptrs: dict[str, int]) -> None:
        self._pointers = [device_ptrs[name] for name in self._names]

    def address(self, name: str) -> int:
        return self._pointers[self._index[name]]

    def execute(self, stream_handle: int) -> bool:
        return bool(
            self._context.execute_async_v2(bindings=self._pointers, stream_handle=stream_handle)
        )


class Cuda(Protocol):
    """The few CUDA runtime services the backend uses, on one device and one stream."""

    library: str
    stream_handle: int

    def current(self) -> contextlib.AbstractContextManager[None]: ...

    def pinned_empty(self, size_bytes: int, dtype: str) -> np.ndarray: ...

    def device_alloc(self, size_bytes: int) -> int: ...

    def copy_h2d_async(self, device_ptr: int, host: np.ndarray) -> None: ...

    def copy_d2h_async(self, host: np.ndarray, device_ptr: int) -> None: ...

    def new_event(self) -> object: ...

    def record(self, event: object) -> None: ...

    def elapsed_ms(self, start: object, end: object) -> float: ...

    def synchronize(self) -> None: ...

    def device_facts(self) -> dict[str, object]: ...

    def close(self) -> None: ...


def open_cuda(device: int) -> Cuda:
    try:
        import pycuda.driver  # noqa: F401
    except ImportError:
        pass
    else:
        return _PyCuda(device)
    try:
        from cuda.bindings import runtime  # noqa: F401  (cuda-python ≥ 12.6)
    except ImportError:
        try:
            from cuda import cudart  # noqa: F401  (older cuda-python)
        except ImportError:
            raise JetkitError(
                "neither pycuda nor cuda-python is installed; install one (`pip install pycuda`, "
                "or `pip install cuda-python` matching your CUDA version)"
            ) from None
    return _CudaRuntime(device)


def _device_missing(device: int, count: int, reason: object) -> JetkitError:
    return JetkitError(
        f"CUDA device {device} is not available ({count} device(s) found: {reason}); "
        "pick another with --device, or check the NVIDIA driver"
    )


class _PyCuda:
    """CUDA through pycuda (NVIDIA/TensorRT release/8.6 samples/python/common.py)."""

    library = "pycuda"

    def __init__(self, device: int) -> None:
        import pycuda.driver as cuda

        self._cuda: Any = cuda
        try:
            cuda.init()
            count = cuda.Device.count()
        except cuda.Error as exc:  # a driver without a usable GPU
            raise _device_missing(device, 0, exc) from None
        if not 0 <= device < count:
            raise _device_missing(device, count, "pycuda")
        self._device: Any = cuda.Device(device)
        # The primary context is the one the CUDA runtime inside TensorRT uses; make_context()
        # would create a second one. Pushed per call, as infer() may run on another thread.
        self._context: Any = self._device.retain_primary_context()
        self._allocations: list[Any] = []
        with self.current():
            self._stream: Any = cuda.Stream()
        self.stream_handle = int(self._stream.handle)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def pinned_empty(self, size_bytes: int, dtype: str) -> np.ndarray:
        host = self._cuda.pagelocked_empty(size_bytes // np.dtype(dtype).itemsize, np.dtype(dtype))
        self._allocations.append(host.base)
        return host

    def device_alloc(self, size_bytes: int) -> int:
        allocation = self._cuda.mem_alloc(size_bytes)
        self._allocations.append(allocation)
        return int(allocation)

    def copy_h2d_async(self, device_ptr: int, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(device_ptr, host, self._stream)

    def copy_d2h_async(self, host: np.ndarray, device_ptr: int) -> None:
        self._cuda.memcpy_dtoh_async(host, device_ptr, self._stream)

    def new_event(self) -> object:
        return self._cuda.Event()

    def record(self, event: Any) -> None:
        event.record(self._stream)

    def elapsed_ms(self, start: object, end: Any) -> float:
        return float(end.time_since(start))

    def synchronize(self) -> None:
        self._stream.synchronize()

    def device_facts(self) -> dict[str, object]:
        major, minor = self._device.compute_capability()
        return {"device": str(self._device.name()), "compute_capability": f"{major}.{minor}"}

    def close(self) -> None:
        with self.current():
            for allocation in self._allocations:
                allocation.free()
            self._allocations.clear()
            del self._stream
        # Not while pushed: detach() pops the context itself when it is current.
        self._context.detach()


class _CudaRuntime:
    """CUDA through cuda-python's runtime bindings, where each call returns `(error, *results)`
    (NVIDIA/TensorRT samples/python/common_runtime.py)."""

    library = "cuda-python"

    def __init__(self, device: int) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self._rt: Any = cudart
        self._device = device
        count_result = cudart.cudaGetDeviceCount()
        count = count_result[1] if count_result[0] == cudart.cudaError_t.cudaSuccess else 0
        if not 0 <= device < count:
            raise _device_missing(device, count, count_result[0])
        self._host_ptrs: list[int] = []
        self._device_ptrs: list[int] = []
        self._events: list[Any] = []
        with self.current():
            self._stream = self._call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.stream_handle = int(self._stream)

    def _call(self, result: tuple[Any, ...], what: str) -> Any:
        if result[0] != self._rt.cudaError_t.cudaSuccess:
            raise RuntimeError(f"{what} failed: {result[0]}")
        return result[1] if len(result) == 2 else None

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        # The runtime's current device is per thread, and infer() may run on another thread.
        self._call(self._rt.cudaSetDevice(self._device), "cudaSetDevice")
        yield

    def pinned_empty(self, size_bytes: int, dtype: str) -> np.ndarray:
        ptr = self._call(self._rt.cudaMallocHost(size_bytes), "cudaMallocHost")  # page-locked
        self._host_ptrs.append(ptr)
        # Wrapped as bytes, then viewed: float16 and bool have no ctypes type.
        raw = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_uint8)), (size_bytes,))
        return raw.view(np.dtype(dtype))

    def device_alloc(self, size_bytes: int) -> int:
        ptr = int(self._call(self._rt.cudaMalloc(size_bytes), "cudaMalloc"))
        self._device_ptrs.append(ptr)
        return ptr

    def copy_h2d_async(self, device_ptr: int, host: np.ndarray) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        result = self._rt.cudaMemcpyAsync(
            device_ptr, host.ctypes.data, host.nbytes, kind, self._stream
        )
        self._call(result, "cudaMemcpyAsync (host to device)")

    def copy_d2h_async(self, host: np.ndarray, device_ptr: int) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        result = self._rt.cudaMemcpyAsync(
            host.ctypes.data, device_ptr, host.nbytes, kind, self._stream
        )
        self._call(result, "cudaMemcpyAsync (device to host)")

    def new_event(self) -> object:
        event = self._call(self._rt.cudaEventCreate(), "cudaEventCreate")
        self._events.append(event)
        return event

    def record(self, event: object) -> None:
        self._call(self._rt.cudaEventRecord(event, self._stream), "cudaEventRecord")

    def elapsed_ms(self, start: object, end: object) -> float:
        return float(self._call(self._rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def synchronize(self) -> None:
        self._call(self._rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def device_facts(self) -> dict[str, object]:
        props = self._call(
            self._rt.cudaGetDeviceProperties(self._device), "cudaGetDeviceProperties"
        )
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else props.name
        return {"device": name.rstrip("\0"), "compute_capability": f"{props.major}.{props.minor}"}

    def close(self) -> None:
        rt = self._rt
        with self.current():
            for event in self._events:
                self._call(rt.cudaEventDestroy(event), "cudaEventDestroy")
            for ptr in self._device_ptrs:
                self._call(rt.cudaFree(ptr), "cudaFree")
            for ptr in self._host_ptrs:
                self._call(rt.cudaFreeHost(ptr), "cudaFreeHost")
            self._call(rt.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
        self._events, self._device_ptrs, self._host_ptrs = [], [], []
