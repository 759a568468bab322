"""Device facts for benchmarks and engine compatibility: L4T release, board model, power mode,
TensorRT version. Pure parsers of the texts a Jetson exposes, plus one reader that returns what
it finds and None elsewhere (on a PC, every Jetson fact is None).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from edge.errors import JetkitError

NV_TEGRA_RELEASE = "etc/nv_tegra_release"
DEVICE_TREE_MODEL = "proc/device-tree/model"
NVPMODEL_TIMEOUT_S = 5.0
DEVFREQ_DIR = "sys/class/devfreq"  # GPU (e.g. 17000000.ga10b on Orin), NVDLA, EMC … in Hz
CPU_DIR = "sys/devices/system/cpu"  # cpuN/cpufreq/scaling_cur_freq in kHz

# "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: …"
_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)")
_POWER_MODE = re.compile(r"^NV Power Mode:\s*(\S+)\s*$", re.MULTILINE)


class PowerMode(NamedTuple):
    """An nvpmodel power mode: its name (`MAXN`, `15W`, …) and number (`nvpmodel -m <id>`)."""

    name: str
    mode_id: int | None


def parse_l4t_release(text: str) -> str | None:
    """`/etc/nv_tegra_release` → the L4T version, e.g. `"35.4.1"`; None if it is not one."""
    match = _RELEASE.search(text)
    if match is None:
        return None
    major, revision, patch = match.groups()
    return f"{int(major)}.{int(revision)}.{int(patch)}"


def parse_nvpmodel(text: str) -> PowerMode | None:
    """`nvpmodel -q` output (`NV Power Mode: MAXN` then the mode number on the next line, maybe
    after `NVPM WARN` lines) → PowerMode; None if it names no mode."""
    match = _POWER_MODE.search(text)
    if match is None:
        return None
    following = text[match.end() :].split()
    mode_id = int(following[0]) if following and following[0].isdigit() else None
    return PowerMode(match.group(1), mode_id)


def parse_device_model(raw: bytes) -> str | None:
    """`/proc/device-tree/model` (NUL-terminated) → e.g. `"NVIDIA Jetson AGX Orin Developer Kit"`."""
    model = raw.decode("utf-8", errors="replace").strip("\0 \n")
    return model or None


def tensorrt_version() -> str | None:
    """The version of a TensorRT that really runs here; None without one (type stubs alone do
    not count)."""
    from edge.backends.tensorrt import require_tensorrt

    try:
        return require_tensorrt()
    except JetkitError:
        return None


def query_power_mode(nvpmodel: str = "nvpmodel") -> PowerMode | None:
    """Ask `nvpmodel -q`; None where it is not installed or does not answer."""
    executable = shutil.which(nvpmodel)
    if executable is None:
        return None
    try:
        result = subprocess.run(
            [executable, "-q"],
            capture_output=True,
            text=True,
            timeout=NVPMODEL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_nvpmodel(result.stdout) if result.returncode == 0 else None


def read_clocks_mhz(root: Path = Path("/")) -> dict[str, object]:
    """Current clocks: `cpu_mhz` (one per online core) and `devfreq` (per device: `cur_mhz`,
    `max_mhz`; `cur == max` on every device is what `jetson_clocks` gives)."""
    cpu_mhz = []
    for path in sorted(
        (root / CPU_DIR).glob("cpu[0-9]*/cpufreq/scaling_cur_freq"), key=_cpu_number
    ):
        khz = _read_int(path)
        if khz is not None:
            cpu_mhz.append(round(khz / 1000))
    devfreq = {}
    for device in sorted((root / DEVFREQ_DIR).glob("*")):
        cur_hz, max_hz = _read_int(device / "cur_freq"), _read_int(device / "max_freq")
        if cur_hz is not None:
            devfreq[device.name] = {
                "cur_mhz": round(cur_hz / 1e6),
                "max_mhz": round(max_hz / 1e6) if max_hz is not None else None,
            }
    return {"cpu_mhz": cpu_mhz, "devfreq": devfreq}


def _cpu_number(path: Path) -> int:
    return int(path.parent.parent.name.removeprefix("cpu"))


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def read_l4t_release(root: Path = Path("/")) -> str | None:
    """This machine's L4T release (`"36.4.0"`); None off a Jetson."""
    return parse_l4t_release(_read_text(root / NV_TEGRA_RELEASE) or "")


def read_device_model(root: Path = Path("/")) -> str | None:
    """The board's model name from the device tree; None off a Jetson."""
    raw = _read_bytes(root / DEVICE_TREE_MODEL)
    return parse_device_model(raw) if raw is not None else None


def read_device_facts(root: Path = Path("/"), nvpmodel: str = "nvpmodel") -> dict[str, object]:
    """What this machine says about itself: `is_jetson`, `model`, `l4t`, `power_mode`,
    `power_mode_id`, `clocks` (see `read_clocks_mhz`; Jetsons only), `tensorrt`, `machine` (CPU
    architecture). Unknown facts are None.

    `root` is where `etc/` and `proc/` are looked up (a copy of a device's files in tests).
    """
    l4t = read_l4t_release(root)
    power_mode = query_power_mode(nvpmodel)
    return {
        "is_jetson": l4t is not None,
        "model": read_device_model(root),
        "l4t": l4t,
        "power_mode": power_mode.name if power_mode else None,
        "power_mode_id": power_mode.mode_id if power_mode else None,
        "clocks": read_clocks_mhz(root) if l4t is not None else None,
        "tensorrt": tensorrt_version(),
        "machine": platform.machine() or None,
    }


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_text(path: Path) -> str | None:
    raw = _read_bytes(path)
    return raw.decode("utf-8", errors="replace") if raw is not None else None
