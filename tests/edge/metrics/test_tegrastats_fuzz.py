"""Fuzzing the tegrastats parser: any line the reader thread gets (a new JetPack's format, a
garbled pipe) is a sample or None, never an exception that would end the thread."""

from __future__ import annotations

import math

import fuzz
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from edge.metrics.tegrastats import TegrastatsSample, parse_tegrastats

# As REFERENCE.md "tegrastats" gives them (tests/edge/metrics/test_tegrastats.py).
LINES = [
    "11-23-2025 22:47:56 RAM 1729/15657MB (lfb 8x4MB) SWAP 0/7828MB (cached 0MB) "
    "CPU [1%@1420,2%@1420,off,off] GR3D_FREQ 0% cpu@46.125C gpu@43C tj@46.937C "
    "VDD_IN 6120mW/6120mW VDD_CPU_GPU_CV 436mW/436mW VDD_SOC 2464mW/2464mW",
    "RAM 1894/7773MB (lfb 1031x4MB) SWAP 0/3886MB (cached 0MB) "
    "CPU [2%@1190,1%@1190,off,off,off,off] EMC_FREQ 0% GR3D_FREQ 12%@1300 VIC_FREQ 0%@115 "
    "APE 150 MTS fg 0% bg 0% AO@-256C GPU@-51C PMIC@100C AUX@37.5C CPU@39C thermal@38.55C "
    "VDD_IN 14025/14416 VDD_CPU_GPU_CV 1234/1300 VDD_SOC 1555/1600",
    "RAM 2000/3956MB (lfb 74x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [12%@1479,5%@1479,off,off] EMC_FREQ 3%@1600 GR3D_FREQ 12%@76 APE 25 PLL@34C "
    "CPU@36.5C PMIC@100C GPU@35C AO@42C thermal@35.75C "
    "POM_5V_IN 4520/4680 POM_5V_GPU 40/40 POM_5V_CPU 1005/1090",
    "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201] "
    "EMC_FREQ 3%@3199 GR3D_FREQ 5%@[1300,1300] NVENC0 off cpu@52.968C/52.968C "
    "VDD_GPU_SOC 2753mW/2753mW VDD_CPU_CV 393mW/393mW VIN_SYS_5V0 3226mW/3226mW",
]
NUMBERS = ["0", "-1", "1" * 5000, "٣", "²", "1.5", "99999999999999999999", "", "off", "nan"]


@st.composite
def tegrastats_lines(draw: st.DrawFn) -> str:
    """A real line with a few of its tokens (or the digits in one) replaced, or cut short."""
    tokens = draw(st.sampled_from(LINES)).split(" ")
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(0, len(tokens) - 1))
        token = tokens[k]
        digits = [i for i, c in enumerate(token) if c.isdigit()]
        if digits and draw(st.booleans()):
            i = draw(st.sampled_from(digits))  # a number inside the token changed
            tokens[k] = token[:i] + draw(fuzz.any_of(NUMBERS) | fuzz.tricky_text) + token[i + 1 :]
        else:
            tokens[k] = draw(fuzz.tricky_text)
    line = " ".join(tokens)
    return line[: draw(st.integers(0, len(line)))] if draw(st.booleans()) else line


def _assert_valid(sample: TegrastatsSample) -> None:
    assert 0 <= sample.ram_used_mb and 0 <= sample.ram_total_mb
    assert len(sample.cpu_load_pct) == len(sample.cpu_mhz)
    assert all(math.isfinite(t) for t in sample.temperatures_c.values())
    assert sample.power_mw is None or sample.power_mw in sample.rails_mw.values()
    # What the reader multiplies by seconds (mW × s = mJ) and the metrics export: float-sized.
    numbers = [sample.ram_used_mb, sample.ram_total_mb, sample.gpu_load_pct, sample.gpu_mhz]
    numbers += [*sample.cpu_load_pct, *sample.cpu_mhz, *sample.rails_mw.values()]
    assert all(n is None or 0 <= n < 10**12 for n in numbers)


@settings(max_examples=fuzz.examples(2000))
@given(st.one_of(tegrastats_lines(), tegrastats_lines(), fuzz.tricky_text, st.text(max_size=200)))
@example("RAM " + "1" * 5000 + "/15657MB")  # int() of 4300+ digits raised ValueError
@example("RAM 1/2MB CPU [" + "1" * 5000 + "%@1420]")
@example("RAM 1/2MB VDD_IN " + "1" * 5000 + "mW/1mW")
@example("RAM 1/2MB cpu@" + "1" * 400 + "C")  # float() of it is inf
@example("RAM 1/2MB VDD_IN " + "9" * 400 + "mW/1mW")  # the reader's power_mw * s overflowed
def test_any_line_is_a_sample_or_none(line):
    sample = parse_tegrastats(line)
    event("a sample" if sample is not None else "None")
    if sample is not None:
        _assert_valid(sample)
