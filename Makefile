# Every target sets up what it needs first (scripts/setup.sh is idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= runs/demo

.PHONY: setup test test-jetson demo lint bench bench-train bench-calib bench-pipeline clean

setup:
	bash scripts/setup.sh

test: setup
	$(PY) -m ruff check edge trainer calibration deploy demo tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q

# On a Jetson (or any machine with TensorRT and a GPU): only the tests that need them.
test-jetson: setup
	$(PY) -m pytest -q -m "jetson or gpu" --run-device

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
	rm -rf $(VENV) .typings runs .pytest_cache .mypy_cache
