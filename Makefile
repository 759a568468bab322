# Every target sets up what it needs first (scripts/setup.sh is idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo

JETSON_VENV ?= .venv-jetson
# The test files with TensorRT tests (the `jetson` marker) that do not need torch: the trainer's
# (a TensorRT engine as a teacher) run with test-trainer-tensorrt instead.
JETSON_TESTS := $(shell grep -rl --exclude-dir=trainer "pytest.mark.jetson" tests)

.PHONY: setup test test-jetson test-gpu test-trainer-tensorrt demo lint bench bench-train bench-vs-ultralytics bench-unlabeled bench-tracking bench-motion bench-live bench-calib bench-pipeline clean

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m ruff check edge trainer calibration deploy demo tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q

# On a Jetson: the TensorRT tests, in the README's device environment (JetPack's TensorRT, CUDA
# and OpenCV through --system-site-packages). Without TensorRT and CUDA it fails, naming them.
test-jetson:
	JETSON_VENV=$(JETSON_VENV) bash scripts/setup_jetson.sh
	$(JETSON_VENV)/bin/python -m pytest -q -m jetson --run-device $(JETSON_TESTS)

# On a machine with a CUDA GPU and torch: the trainer's GPU tests.
test-gpu: setup
	$(PY) -m pytest -q -m gpu --run-device tests/trainer

# On a machine with a CUDA GPU, torch and TensorRT in $(VENV) (e.g. `pip install tensorrt
# cuda-python` there): the trainer's TensorRT tests (an engine as a distillation teacher).
test-trainer-tensorrt: setup
	$(PY) -m pytest -q -m jetson --run-device tests/trainer

# The whole chain on the built-in defaults (`jetkit demo --help`); DEMO_ARGS=--quick for minutes.
demo: setup
	$(VENV)/bin/jetkit demo --out $(DEMO_DIR) $(DEMO_ARGS)

bench: setup
	$(PY) benchmarks/bench_nms.py
	$(PY) benchmarks/bench_preprocess.py
	$(PY) benchmarks/bench_cli_overhead.py
	$(PY) benchmarks/bench_import.py

# The trainer's benchmarks take long on a CPU (the distillation one about an hour on 2 cores).
bench-train: setup
	$(PY) benchmarks/bench_distill.py
	$(PY) benchmarks/bench_train_gpu.py

# jetkit's students against Ultralytics YOLOv8n trained in the same run (Ultralytics in its own
# venv): YOLOv8n, jetkit n, teacher s, n and t distilled, about an hour on 2 CPU cores.
bench-vs-ultralytics: setup
	$(PY) benchmarks/bench_vs_ultralytics.py --json runs/bench_vs_ultralytics.json

# Students from 10% of the labels plus a teacher's pseudo-labels on the other 90% (an ONNX teacher,
# and an Ultralytics-exported one in its own venv), against 10% and all labels: ~50 min on 2 cores.
bench-unlabeled: setup
	$(PY) benchmarks/bench_unlabeled.py --json runs/bench_unlabeled.json

# jetkit's ByteTrack against supervision's on the same detections (their venv made on first use).
bench-tracking: setup
	$(PY) benchmarks/bench_tracking.py --json runs/bench_tracking.json

# Motion gating on a mostly still stream: CPU per second of video and recall, gated against not.
bench-motion: setup
	$(PY) benchmarks/bench_motion.py --json runs/bench_motion.json

# The daemon on 4 streams, one a real RTSP stream cut 3 times for 5 s, then a one-hour soak.
bench-live: setup
	$(PY) benchmarks/bench_live.py --json runs/bench_live.json

# INT8/FP16 artifacts of bench-train's student against its FP32 ONNX (needs bench-train first).
bench-calib: setup
	$(PY) benchmarks/bench_calibration.py

# The streaming pipeline, about 35 minutes (a 10-minute memory soak). The second run is on the
# demo student of bench-train when it is there: the issue's model for the streams goal.
bench-pipeline: setup
	$(PY) benchmarks/bench_pipeline.py --json runs/bench_pipeline.json
	if [ -f runs/bench_distill/demo/distilled-0/onnx/model.onnx ]; then \
		$(PY) benchmarks/bench_pipeline.py --model runs/bench_distill/demo/distilled-0/onnx/model.onnx \
			--sections throughput,overload,streams --out runs/bench_pipeline_student \
			--json runs/bench_pipeline_student.json; \
	fi

lint: setup
	$(PY) -m ruff check edge trainer calibration deploy demo tests benchmarks

clean:
	rm -rf $(VENV) $(JETSON_VENV) .typings runs .pytest_cache .mypy_cache
