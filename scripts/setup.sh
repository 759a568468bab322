#!/usr/bin/env bash
# Idempotent set-up of a development machine (Debian 12, as root or with sudo): the Debian
# packages jetkit's tests use, a virtual environment in .venv, the CPU build of torch where no
# GPU is present, the project with its dev extras, and the TensorRT type stubs for mypy.
# Re-running it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# The torch build to take. On machines without a GPU this must be a CPU build: a bare `torch`
# requirement pulls a multi-GB CUDA build. Override TORCH_SPEC / TORCH_PIP_ARGS elsewhere, e.g.
# TORCH_PIP_ARGS="--index-url <your PyTorch CPU wheel index>".
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_PIP_ARGS=${TORCH_PIP_ARGS:-}
TRT_STUBS=${TRT_STUBS:-tensorrt-stubs==10.13.0.35.1}

# GStreamer with the introspection data PyGObject needs, and what building PyGObject needs; the
# decoders users' files need (libav: MPEG-4 part 2, H.264, H.265; bad: their parsers) and the
# encoders the tests write H.264 and H.265 files with (ugly: x264enc; bad: x265enc);
# the RTSP server the rtsp:// sink serves through; the MQTT broker (with mosquitto_passwd) and
# openssl that the MQTT sink tests run; the OpenSSH server and client that flashing goes through
# (the tests start their own sshd on 127.0.0.1); Chromium, in which a test opens the demo's report.
APT_PACKAGES=(
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
    gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
    libgirepository1.0-dev libcairo2-dev pkg-config
    gir1.2-gst-rtsp-server-1.0
    mosquitto openssl
    openssh-server openssh-client
    chromium
)

# What the chosen Python needs to create a venv and to build PyGObject and pycairo: Debian's own
# python3 comes without venv and headers (a pyenv or other self-built Python has both).
python_build_packages() {
    if ! command -v "$PYTHON" >/dev/null; then
        printf '%s\n' python3 python3-venv python3-dev gcc libc6-dev
        return
    fi
    "$PYTHON" -c 'import ensurepip' 2>/dev/null || echo python3-venv
    "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h")))' || echo python3-dev
    printf '%s\n' gcc libc6-dev
}
mapfile -t -O ${#APT_PACKAGES[@]} APT_PACKAGES < <(python_build_packages)

log() { printf 'setup: %s\n' "$*"; }

install_apt_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        log "missing Debian packages ${missing[*]} and no apt-get here; install them by hand"
        return 1
    fi
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # Debian starts a system broker (port 1883) and sshd (port 22) with their packages; the tests
    # start their own on free ports, so the ones we just installed are stopped and left off.
    local package service
    for package in mosquitto:mosquitto openssh-server:ssh; do
        service=${package#*:}
        package=${package%%:*}
        if [[ " ${missing[*]} " == *" $package "* ]] && command -v systemctl >/dev/null; then
            "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
        fi
    done
}

has_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }

install_python_packages() {
    # A venv whose creation failed halfway (no ensurepip, say) has a python but no pip: redo it.
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        log "creating $VENV"
        "$PYTHON" -m venv --clear "$VENV"
    fi
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        if has_gpu; then
            log "GPU found: installing torch with CUDA"
            "${pip[@]}" install torch
        else
            log "no GPU: installing the CPU build $TORCH_SPEC"
            # shellcheck disable=SC2086
            "${pip[@]}" install "$TORCH_SPEC" $TORCH_PIP_ARGS
        fi
    fi
    local stamp="$VENV/.jetkit-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        log "installing jetkit[dev]"
        "${pip[@]}" install -e '.[dev]'
        touch "$stamp"
    fi
    if [ ! -f .typings/tensorrt/__init__.pyi ]; then
        log "installing $TRT_STUBS into .typings (for mypy only)"
        "${pip[@]}" install --no-deps --target .typings "$TRT_STUBS"
    fi
    # tensorrt-stubs 10.13 is not valid Python in two places (parameters named `in`, a required
    # parameter after defaulted ones), which stops mypy before it reads our code. Idempotent.
    sed -i -E 's/([(, ])in: /\1in_: /g; s/(channel_axis: int)\)/\1 = ...)/' .typings/tensorrt_bindings/tensorrt.pyi
}

install_apt_packages
install_python_packages
