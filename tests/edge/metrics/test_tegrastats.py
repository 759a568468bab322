"""tegrastats: the parser on the line formats of REFERENCE.md, and the reader on a real process
(a stand-in `tegrastats` script that prints such lines)."""

import itertools
import json
import os

import pytest

from edge.metrics import PipelineMetrics, TegrastatsReader, parse_tegrastats

# REFERENCE.md "tegrastats", verbatim.
ORIN = (
    "11-23-2025 22:47:56 RAM 1729/15657MB (lfb 8x4MB) SWAP 0/7828MB (cached 0MB) "
    "CPU [1%@1420,2%@1420,off,off] GR3D_FREQ 0% cpu@46.125C gpu@43C tj@46.937C "
    "VDD_IN 6120mW/6120mW VDD_CPU_GPU_CV 436mW/436mW VDD_SOC 2464mW/2464mW"
)
# Built from REFERENCE.md's description of older boards: no date, `GR3D_FREQ 12%@1300`,
# upper-case sensors, `-256C` disabled, rails without a unit, `off` cores.
XAVIER_NX = (
    "RAM 1894/7773MB (lfb 1031x4MB) SWAP 0/3886MB (cached 0MB) "
    "CPU [2%@1190,1%@1190,off,off,off,off] EMC_FREQ 0% GR3D_FREQ 12%@1300 VIC_FREQ 0%@115 "
    "APE 150 MTS fg 0% bg 0% AO@-256C GPU@-51C PMIC@100C AUX@37.5C CPU@39C thermal@38.55C "
    "VDD_IN 14025/14416 VDD_CPU_GPU_CV 1234/1300 VDD_SOC 1555/1600"
)
NANO = (
    "RAM 2000/3956MB (lfb 74x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [12%@1479,5%@1479,off,off] EMC_FREQ 3%@1600 GR3D_FREQ 12%@76 APE 25 PLL@34C "
    "CPU@36.5C PMIC@100C GPU@35C AO@42C thermal@35.75C "
    "POM_5V_IN 4520/4680 POM_5V_GPU 40/40 POM_5V_CPU 1005/1090"
)
# AGX Orin prints no board-input rail; a newer JetPack prints the GPU clock per GPC.
AGX_ORIN = (
    "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201] "
    "EMC_FREQ 3%@3199 GR3D_FREQ 5%@[1300,1300] NVENC0 off cpu@52.968C/52.968C "
    "VDD_GPU_SOC 2753mW/2753mW VDD_CPU_CV 393mW/393mW VIN_SYS_5V0 3226mW/3226mW"
)


def test_orin_line():
    sample = parse_tegrastats(ORIN)
    assert sample is not None
    assert (sample.ram_used_mb, sample.ram_total_mb) == (1729, 15657)
    assert sample.cpu_load_pct == (1, 2, None, None)
    assert sample.cpu_mhz == (1420, 1420, None, None)
    assert (sample.gpu_load_pct, sample.gpu_mhz) == (0, None)
    assert sample.temperatures_c == {"cpu": 46.125, "gpu": 43.0, "tj": 46.937}
    assert sample.rails_mw == {"VDD_IN": 6120, "VDD_CPU_GPU_CV": 436, "VDD_SOC": 2464}
    assert sample.power_mw == 6120


def test_xavier_line_without_units_and_with_a_disabled_sensor():
    sample = parse_tegrastats(XAVIER_NX)
    assert sample is not None
    assert (sample.ram_used_mb, sample.ram_total_mb) == (1894, 7773)
    assert sample.cpu_load_pct == (2, 1, None, None, None, None)
    assert (sample.gpu_load_pct, sample.gpu_mhz) == (12, 1300)
    assert sample.temperatures_c == {
        "gpu": -51.0,
        "pmic": 100.0,
        "aux": 37.5,
        "cpu": 39.0,
        "thermal": 38.55,
    }
    assert sample.rails_mw == {"VDD_IN": 14025, "VDD_CPU_GPU_CV": 1234, "VDD_SOC": 1555}
    assert sample.power_mw == 14025


def test_nano_line_takes_the_board_power_from_pom_5v_in():
    sample = parse_tegrastats(NANO)
    assert sample is not None
    assert sample.ram_total_mb == 3956  # IRAM's kB figures are not RAM, nor a rail
    assert sample.cpu_mhz == (1479, 1479, None, None)
    assert (sample.gpu_load_pct, sample.gpu_mhz) == (12, 76)
    assert sample.rails_mw == {"POM_5V_IN": 4520, "POM_5V_GPU": 40, "POM_5V_CPU": 1005}
    assert sample.power_mw == 4520
    assert sample.temperatures_c["cpu"] == 36.5


def test_board_without_an_input_rail_has_no_total_power():
    sample = parse_tegrastats(AGX_ORIN)
    assert sample is not None
    assert sample.power_mw is None
    assert sample.rails_mw["VIN_SYS_5V0"] == 3226
    assert (sample.gpu_load_pct, sample.gpu_mhz) == (5, 1300)
    assert sample.temperatures_c == {"cpu": 52.968}


@pytest.mark.parametrize("line", ["", "tegrastats: command not found", "VDD_IN 6120mW/6120mW"])
def test_other_lines_are_not_samples(line):
    assert parse_tegrastats(line) is None


# --- the reader, on a real process -----------------------------------------------------------


def test_reader_runs_tegrastats_from_path_and_integrates_energy(
    tmp_path, monkeypatch, fake_tegrastats, wait_until
):
    fake_tegrastats([ORIN, "not a sample"])
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    ticks = itertools.count()
    # Every clock read is 0.1 s after the previous one: each sample then holds for 0.1 s.
    reader = TegrastatsReader(interval_ms=250, clock=lambda: next(ticks) * 0.1)
    assert reader.latest is None and reader.energy_mj is None
    with reader:
        wait_until(lambda: reader.samples >= 3)
    samples = reader.samples
    assert (tmp_path / "args").read_text().split() == ["--interval", "250"]
    assert reader.latest == parse_tegrastats(ORIN)
    assert reader.energy_mj == pytest.approx(6120 * 0.1 * samples)
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    reader.stop()  # twice is fine


def test_reader_keeps_the_last_sample_when_tegrastats_exits(fake_tegrastats, wait_until):
    script = fake_tegrastats([XAVIER_NX, NANO, AGX_ORIN], repeat=False)
    reader = TegrastatsReader(interval_ms=10, executable=str(script))
    assert reader.start()
    wait_until(lambda: reader.samples == 3)
    reader.stop()
    assert reader.latest == parse_tegrastats(AGX_ORIN)
    energy_mj = reader.energy_mj
    assert energy_mj is not None and energy_mj > 0  # from the two samples with a board power


def test_without_tegrastats_nothing_is_reported(tmp_path):
    reader = TegrastatsReader(executable=str(tmp_path / "tegrastats"))
    assert not reader.start()
    metrics = PipelineMetrics(["cam"])
    metrics.attach_power(reader)
    metrics.record_result("cam", 10.0)
    assert metrics.snapshot()["power"] == {
        "power_mw": None,
        "gpu_load_pct": None,
        "temperatures_c": {},
        "energy_mj": None,
        "energy_mj_per_frame": None,
    }
    assert "power: no tegrastats sample" in metrics.format_table()
    reader.stop()


def test_snapshot_reports_power_and_energy_per_frame(fake_tegrastats, wait_until):
    script = fake_tegrastats([ORIN])
    ticks = itertools.count()
    metrics = PipelineMetrics(["cam"])
    with TegrastatsReader(executable=str(script), clock=lambda: next(ticks) * 0.1) as reader:
        metrics.attach_power(reader)
        for _ in range(4):
            metrics.record_result("cam", 10.0)
        wait_until(lambda: reader.samples >= 2)
    power = json.loads(json.dumps(metrics.snapshot()))["power"]
    assert power["power_mw"] == 6120 and power["gpu_load_pct"] == 0
    assert power["temperatures_c"] == {"cpu": 46.125, "gpu": 43.0, "tj": 46.937}
    assert power["energy_mj"] == pytest.approx(612.0 * reader.samples)
    assert power["energy_mj_per_frame"] == pytest.approx(power["energy_mj"] / 4)
    assert "power: 6120 mW, GPU 0% 43.0 C, " in metrics.format_table()
