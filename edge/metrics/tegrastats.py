"""Jetson power, GPU load and temperatures from `tegrastats`: a pure parser of its lines and a
reader thread that keeps the latest sample and the board energy since it started.

Line formats (see REFERENCE.md "tegrastats"): Orin prints a date and rails in mW
(`VDD_IN 6120mW/6120mW`), `GR3D_FREQ 0%`, lower-case sensors (`tj@46.937C`); Xavier and Nano
print no date, rails without a unit (`VDD_IN 14025/14416`, Nano `POM_5V_IN 4520/4680`),
`GR3D_FREQ 12%@1300`, upper-case sensors and `-256C` for a disabled one. `off` is a parked core.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

# Rails that measure the whole board's input, whichever board prints them.
TOTAL_POWER_RAILS = ("VDD_IN", "POM_5V_IN")
DISABLED_SENSOR_C = -256.0
STOP_TIMEOUT_S = 2.0

# Numbers of at most 9 digits (`\d{1,9}`): a garbled line's longer runs are no reading, and
# int() refuses 4300+ digits, float() makes 400 inf and `power_mw * s` overflows.
_RAM = re.compile(r"\bRAM (\d{1,9})/(\d{1,9})MB\b")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CORE = re.compile(r"(\d{1,9})%(?:@(\d{1,9}))?")
# Orin on JetPack 6 may print the GPU clock per GPC, as `@[305,305]`: the first one is kept.
_GPU = re.compile(r"\bGR3D_FREQ (\d{1,9})%(?:@\[?(\d{1,9})(?!\d))?")
_TEMPERATURE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d{1,9}(?:\.\d{1,9})?)C\b")
# The lookahead keeps `RAM 1729/15657MB` and `IRAM 0/252kB` out: rails end in mW or nothing.
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d{1,9})(?:mW)?/(\d{1,9})(?:mW)?(?=\s|$)")


@dataclass(frozen=True)
class TegrastatsSample:
    """One tegrastats line.

    `power_mw` is the board's input power (`VDD_IN` or `POM_5V_IN`; None on boards that print
    neither); `rails_mw` every rail's current reading; `cpu_load_pct`/`cpu_mhz` one entry per
    core, None for a parked one; `temperatures_c` by lower-case sensor name, disabled sensors
    left out.
    """

    ram_used_mb: int
    ram_total_mb: int
    cpu_load_pct: tuple[int | None, ...]
    cpu_mhz: tuple[int | None, ...]
    gpu_load_pct: int | None
    gpu_mhz: int | None
    temperatures_c: dict[str, float]
    rails_mw: dict[str, int]
    power_mw: int | None


def parse_tegrastats(line: str) -> TegrastatsSample | None:
    """A tegrastats line → TegrastatsSample; None for a line that is not one (no `RAM` field)."""
    ram = _RAM.search(line)
    if ram is None:
        return None
    cpu_load_pct: list[int | None] = []
    cpu_mhz: list[int | None] = []
    cpu = _CPU.search(line)
    for core in cpu.group(1).split(",") if cpu else []:
        match = _CORE.fullmatch(core.strip())
        cpu_load_pct.append(int(match.group(1)) if match else None)
        cpu_mhz.append(int(match.group(2)) if match and match.group(2) else None)
    gpu = _GPU.search(line)
    temperatures_c = {
        name.lower(): float(value)
        for name, value in _TEMPERATURE.findall(line)
        if float(value) != DISABLED_SENSOR_C
    }
    rails_mw = {name: int(current) for name, current, _average in _RAIL.findall(line)}
    total = next((rails_mw[name] for name in TOTAL_POWER_RAILS if name in rails_mw), None)
    return TegrastatsSample(
        ram_used_mb=int(ram.group(1)),
        ram_total_mb=int(ram.group(2)),
        cpu_load_pct=tuple(cpu_load_pct),
        cpu_mhz=tuple(cpu_mhz),
        gpu_load_pct=int(gpu.group(1)) if gpu else None,
        gpu_mhz=int(gpu.group(2)) if gpu and gpu.group(2) else None,
        temperatures_c=temperatures_c,
        rails_mw=rails_mw,
        power_mw=total,
    )


class TegrastatsReader:
    """Runs `tegrastats --interval MS` in a thread; keeps the latest sample and the board energy.

    Each sample's power is taken to hold since the previous sample (or since `start`), so
    `energy_mj` is the integral of board power over the reader's life. Where tegrastats is not
    installed `start()` returns False and `latest`/`energy_mj` stay None.

        with TegrastatsReader(interval_ms=500) as reader:
            ...
            reader.latest, reader.energy_mj
    """

    def __init__(
        self,
        interval_ms: int = 1000,
        executable: str = "tegrastats",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_ms < 1:
            raise ValueError(f"interval_ms must be >= 1, got {interval_ms}")
        self.interval_ms = interval_ms
        self.executable = executable
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: TegrastatsSample | None = None
        self._energy_mj: float | None = None
        self._samples = 0
        self._last_s = 0.0
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start tegrastats (a name on PATH or a path); False where it does not exist or run.
        Once started, further calls do nothing."""
        if self._process is not None:
            return True
        executable = shutil.which(self.executable)
        if executable is None:
            return False
        try:
            process = subprocess.Popen(
                [executable, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        except OSError:
            return False
        assert process.stdout is not None
        self._last_s = self._clock()
        self._process = process
        self._thread = threading.Thread(
            target=self._read, args=(process.stdout,), name="tegrastats", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop tegrastats and the thread; safe to call twice or without `start`."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)

    def __enter__(self) -> TegrastatsReader:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def latest(self) -> TegrastatsSample | None:
        with self._lock:
            return self._latest

    @property
    def energy_mj(self) -> float | None:
        """Board energy since `start` in mJ; None until a sample with the board power arrives."""
        with self._lock:
            return self._energy_mj

    @property
    def samples(self) -> int:
        """How many tegrastats lines have been parsed."""
        with self._lock:
            return self._samples

    def _read(self, stdout: IO[str]) -> None:
        with stdout:
            for line in stdout:
                sample = parse_tegrastats(line)
                if sample is None:
                    continue
                now_s = self._clock()
                with self._lock:
                    if sample.power_mw is not None:
                        # mW × s = mJ
                        self._energy_mj = (self._energy_mj or 0.0) + sample.power_mw * (
                            now_s - self._last_s
                        )
                    self._last_s = now_s
                    self._latest = sample
                    self._samples += 1
