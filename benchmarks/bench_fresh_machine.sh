#!/usr/bin/env bash
# The README's promise on a fresh Debian 12 machine, measured: a bare Debian 12 root made by
# debootstrap (a chroot on this machine, so the same CPUs), git and make installed, the repository
# cloned, then `make setup`, `make demo`, and `make demo DEMO_ARGS=--quick` twice into the same
# runs/demo (reruns must work, after the other recipe and after itself). Prints a table of wall
# times and the issue's sums (set-up + demo); exits 1 if a step fails.
#
# Needs root and debootstrap. The pip settings of this machine (PIP_* variables, pip.conf files,
# local wheel folders they name, the CA bundle of PIP_CERT) are carried into the chroot, so pip
# reaches the same registries. Usage, from the repository root:
#
#     sudo benchmarks/bench_fresh_machine.sh [--root /srv/jetkit-fresh] [--keep]
#
# --keep leaves the chroot for inspection (it is removed, mounts first, otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=/srv/jetkit-fresh
KEEP=0
MIRROR=${MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
    case $1 in
        --root) ROOT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "bench_fresh_machine: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench_fresh_machine: needs root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "bench_fresh_machine: apt-get install debootstrap" >&2; exit 2; }
[ -e "$ROOT" ] && { echo "bench_fresh_machine: $ROOT exists; remove it or pass --root" >&2; exit 2; }

MOUNTS=()
bind() {  # bind SRC at the same path inside the root; ro for everything but the kernel's trees
    local src=$1 mode=${2:-ro}
    mkdir -p "$ROOT$src"
    mount --bind "$src" "$ROOT$src"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$ROOT$src"; fi
    MOUNTS+=("$ROOT$src")
}
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}" 2>/dev/null || true; done
    if [ "$KEEP" -eq 0 ]; then rm -rf --one-file-system "$ROOT"; fi
}
trap cleanup EXIT

# Local folders that pip is told to read (find-links, file:// indexes), to bind into the root.
pip_local_dirs() {
    { env | sed -n 's/^PIP_[A-Z_]*=//p'; cat /etc/pip.conf /etc/xdg/pip/pip.conf ~/.config/pip/pip.conf 2>/dev/null; } |
        tr ' =' '\n\n' | sed -n 's#^file://##; s#/simple/*$##; \#^/#p' | sort -u |
        while read -r dir; do if [ -d "$dir" ]; then echo "$dir"; fi; done
}

declare -A SECONDS_OF RC_OF
STEPS=()
timed() {  # timed NAME COMMAND…: run in the root's clone, log to $ROOT.logs/NAME.log
    local name=$1 start rc=0
    shift
    STEPS+=("$name")
    start=$(date +%s)
    echo "bench_fresh_machine: $name: $*"
    chroot "$ROOT" env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "${PIP_ENV[@]}" bash -c "cd /root/jetkit 2>/dev/null || cd /root; $*" >"$LOGS/$name.log" 2>&1 || rc=$?
    SECONDS_OF[$name]=$(($(date +%s) - start))
    RC_OF[$name]=$rc
    if [ "$rc" -ne 0 ]; then
        echo "bench_fresh_machine: $name failed ($rc): $LOGS/$name.log" >&2
        tail -20 "$LOGS/$name.log" >&2
    fi
}

LOGS=$ROOT.logs
mkdir -p "$LOGS"
start=$(date +%s)
debootstrap --include=ca-certificates bookworm "$ROOT" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1
SECONDS_OF[debootstrap]=$(($(date +%s) - start))
for d in /proc /sys /dev /dev/pts; do bind "$d" rw; done
bind "$REPO"
for dir in $(pip_local_dirs); do bind "$dir"; done
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Debian's installer names the host in /etc/hosts; debootstrap does not, and an unresolvable host
# name stalls torch.distributed's rendezvous (the trainer's --nproc test) for minutes.
echo "127.0.1.1 $(hostname)" >>"$ROOT/etc/hosts"
for f in /etc/pip.conf /etc/xdg/pip/pip.conf /etc/xdg/pip/constraints.txt ~/.config/pip/pip.conf; do
    if [ -f "$f" ]; then install -D -m 644 "$f" "$ROOT${f/#$HOME//root}"; fi
done
PIP_ENV=()
while IFS= read -r line; do PIP_ENV+=("$line"); done < <(env | grep '^PIP_' || true)
if [ -n "${PIP_CERT:-}" ]; then install -D -m 644 "$PIP_CERT" "$ROOT$PIP_CERT"; fi
# ../shared beside the clone, as CI has it.
if [ -d "$REPO/../shared" ]; then
    SHARED=$(cd "$REPO/../shared" && pwd)
    bind "$SHARED"
    ln -s "$SHARED" "$ROOT/root/shared"
fi

timed prerequisites "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git make"
timed clone "git config --global --add safe.directory '*' && git clone -q $REPO /root/jetkit"
timed make-setup "make setup"
timed make-demo "make demo"
timed make-demo-quick "make demo DEMO_ARGS=--quick"
timed make-demo-quick-2 "make demo DEMO_ARGS=--quick"

echo
printf '%-18s %8s %6s\n' step "wall s" rc
printf '%-18s %8s %6s\n' debootstrap "${SECONDS_OF[debootstrap]}" 0
failed=0
for name in "${STEPS[@]}"; do
    printf '%-18s %8s %6s\n' "$name" "${SECONDS_OF[$name]}" "${RC_OF[$name]}"
    if [ "${RC_OF[$name]}" -ne 0 ]; then failed=1; fi
done
setup_s=$((SECONDS_OF[prerequisites] + SECONDS_OF[clone] + SECONDS_OF[make-setup]))
echo
echo "set-up (git and make, clone, make setup) + make demo: $((setup_s + SECONDS_OF[make-demo])) s"
echo "set-up + make demo DEMO_ARGS=--quick: $((setup_s + SECONDS_OF[make-demo-quick-2])) s"
echo "logs: $LOGS"
exit $failed
