#!/usr/bin/env bash
# Makes (once) the virtual environment the tracking benchmark runs its anchors in, never jetkit's
# own: supervision's ByteTrack (0.30.9 is its last release that has it: 0.31 moved trackers to
# another package), py-motmetrics and TrackEval (whose registry releases still call NumPy 1 APIs,
# hence numpy<2 here).
# Usage: benchmarks/tracking_venv.sh [VENV]   (default runs/tracking-venv); prints its python.
set -euo pipefail
VENV=${1:-runs/tracking-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import supervision as sv, motmetrics; sv.ByteTrack" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "numpy<2" "supervision<0.31" motmetrics trackeval >&2
fi
echo "$VENV/bin/python"
