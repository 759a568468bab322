"""Jetson device facts: parsers on the texts devices print, and the reader on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import jetson
from edge.jetson import PowerMode

ORIN_JP5 = (
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue Aug  1 19:57:35 UTC 2023\n"
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
)


@pytest.mark.parametrize(
    ("text", "l4t"),
    [
        (ORIN_JP5, "35.4.1"),
        ("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64", "36.3.0"),
        ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64", "32.7.1"),
        ("#R36 (release),  REVISION: 4.3", "36.4.3"),
    ],
)
def test_parse_l4t_release(text: str, l4t: str) -> None:
    assert jetson.parse_l4t_release(text) == l4t


@pytest.mark.parametrize("text", ["", "Ubuntu 22.04.4 LTS", "# R35 (release)"])
def test_parse_l4t_release_of_other_text_is_none(text: str) -> None:
    assert jetson.parse_l4t_release(text) is None


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("NV Power Mode: MAXN\n0\n", PowerMode("MAXN", 0)),
        ("NV Power Mode: 15W\n2", PowerMode("15W", 2)),
        (
            "NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN_SUPER\n2\n",
            PowerMode("MAXN_SUPER", 2),
        ),
        ("NV Power Mode: 7W\n", PowerMode("7W", None)),
    ],
)
def test_parse_nvpmodel(text: str, mode: PowerMode) -> None:
    assert jetson.parse_nvpmodel(text) == mode


def test_parse_nvpmodel_without_a_mode_is_none() -> None:
    assert jetson.parse_nvpmodel("NVPM ERROR: failed to read PARAM\n") is None


def test_parse_device_model_strips_the_nul() -> None:
    raw = b"NVIDIA Jetson Orin Nano Developer Kit\x00"
    assert jetson.parse_device_model(raw) == "NVIDIA Jetson Orin Nano Developer Kit"
    assert jetson.parse_device_model(b"\x00") is None


def test_read_device_facts_from_a_jetson_file_tree(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(ORIN_JP5)
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\0")

    facts = jetson.read_device_facts(root=tmp_path, nvpmodel="jetkit-no-such-nvpmodel")

    assert facts["is_jetson"] is True
    assert facts["l4t"] == "35.4.1"
    assert facts["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert facts["power_mode"] is None and facts["power_mode_id"] is None  # no nvpmodel here
    assert facts["clocks"] == {"cpu_mhz": [], "devfreq": {}}


def test_clocks_from_sysfs(tmp_path: Path) -> None:
    for core, khz in ((0, 1420800), (1, 729600), (10, 2201600)):
        freq = tmp_path / f"sys/devices/system/cpu/cpu{core}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_cur_freq").write_text(f"{khz}\n")
    gpu = tmp_path / "sys/class/devfreq/17000000.ga10b"
    gpu.mkdir(parents=True)
    (gpu / "cur_freq").write_text("1300500000\n")
    (gpu / "max_freq").write_text("1300500000\n")
    clocks = jetson.read_clocks_mhz(tmp_path)
    assert clocks == {
        "cpu_mhz": [1421, 730, 2202],  # cpu0, cpu1, cpu10: numeric order
        "devfreq": {"17000000.ga10b": {"cur_mhz": 1300, "max_mhz": 1300}},
    }


def test_power_mode_from_a_real_nvpmodel_process(tmp_path: Path) -> None:
    fake = tmp_path / "nvpmodel"
    fake.write_text("#!/bin/sh\necho 'NVPM WARN: patching'\necho 'NV Power Mode: 15W'\necho 2\n")
    fake.chmod(0o755)
    assert jetson.query_power_mode(str(fake)) == PowerMode("15W", 2)


def test_read_device_facts_on_a_machine_that_is_not_a_jetson(tmp_path: Path) -> None:
    facts = jetson.read_device_facts(root=tmp_path, nvpmodel="jetkit-no-such-nvpmodel")

    assert facts["is_jetson"] is False
    assert facts["l4t"] is None and facts["model"] is None and facts["power_mode"] is None
    assert set(facts) == {
        "is_jetson",
        "model",
        "l4t",
        "power_mode",
        "power_mode_id",
        "clocks",
        "tensorrt",
        "machine",
    }


@pytest.mark.skipif(Path("/etc/nv_tegra_release").exists(), reason="this machine is a Jetson")
def test_read_device_facts_here() -> None:
    facts = jetson.read_device_facts()
    assert facts["is_jetson"] is False
    assert facts["tensorrt"] is None or isinstance(facts["tensorrt"], str)
    assert isinstance(facts["machine"], str)
