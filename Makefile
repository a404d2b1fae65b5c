# Two commands for a fresh machine: `make demo` and `make test`. Each installs what it needs
# (tools/env.sh: pinned venv, idempotent) and builds the messages with colcon first.
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
RUN := VENV=$(VENV) tools/rosenv.sh
DEMO_SECONDS ?= 40
OUT ?= out

.PHONY: env build test test-core demo bench bench-graph bench-model bench-detect bench-method \
	bench-transport bench-startup bench-discovery bench-compressed bench-order soak clean \
	check-tensorrt gpu-check

env:
	@VENV=$(VENV) tools/env.sh

# colcon from the pip wheels; BUILD_TESTING=OFF keeps rosidl from calling lint tools we do not use.
# vendor/tf2_msgs: the TFMessage interface the pip wheels lack (a ROS machine uses its own tf2_msgs).
build: env
	@VIRTUAL_ENV=$(VENV) PATH=$(VENV)/bin:$$PATH AMENT_PREFIX_PATH=$(VENV) CMAKE_PREFIX_PATH=$(VENV) \
	  $(VENV)/bin/colcon --log-base log build --paths . vendor/tf2_msgs --event-handlers console_cohesion- summary- \
	  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(VENV)/bin/python \
	  -DPython3_NumPy_INCLUDE_DIR=$$(cat $(VENV)/.numpy-include-path) > $(CURDIR)/log-build.txt 2>&1 \
	  || { cat $(CURDIR)/log-build.txt; exit 1; }

test: build
	$(RUN) python -m pytest -q -rfER test \
	  || { cat log/test_teardown_stacks.txt 2>/dev/null; exit 1; }

test-core: env
	$(RUN) python -m pytest -q test/train test/runtime test/detect

demo: build
	$(RUN) python -m muon_ad_ros.cli demo --seconds $(DEMO_SECONDS) --out $(OUT)/demo

bench: bench-model bench-detect bench-transport bench-startup bench-discovery bench-compressed bench-graph

bench-graph: build
	$(RUN) python -m muon_ad_ros.cli bench graph --out $(OUT)/bench

bench-model: build
	$(RUN) python -m muon_ad_ros.cli bench model --out $(OUT)/bench

bench-detect: build
	$(RUN) python -m muon_ad_ros.cli bench detect --out $(OUT)/bench

bench-transport: build
	$(RUN) python -m muon_ad_ros.cli bench transport --out $(OUT)/bench

bench-startup: build
	$(RUN) python -m muon_ad_ros.cli bench startup --out $(OUT)/bench

bench-discovery: build
	$(RUN) python -m muon_ad_ros.cli bench discovery --out $(OUT)/bench

bench-compressed: build
	$(RUN) python -m muon_ad_ros.bench.compressed --out $(OUT)/bench

bench-method: build
	$(RUN) python -m muon_ad_ros.cli bench method --out $(OUT)/bench

# channel orders at the point the order is fixed, over 5 seeds of the starry_night recipe (~20 min on 2 cores)
ORDER_SEEDS := 0 1 2 3 4
bench-order: build
	for s in $(ORDER_SEEDS); do $(RUN) python -m muon_ad_ros.cli distill --style starry_night --iters 400 \
	  --stats-weight 3 --seed $$s --no-export --out $(OUT)/bench_order/seed$$s || exit 1; done
	$(RUN) python -m muon_ad_ros.cli bench order --out $(OUT)/bench \
	  --checkpoint $(foreach s,$(ORDER_SEEDS),$(OUT)/bench_order/seed$(s)/before_order.pt)

soak: build
	$(RUN) python -m muon_ad_ros.cli soak --seconds 600 --out $(OUT)/soak

# Not part of `make test` (about 100 MB per release): installs the TensorRT Python bindings of each supported
# release into ~/.cache/muon_ad_ros/tensorrt/<version>, checks every TensorRT name the package uses against
# them, then runs the tests that need them. PLANT=BuilderFlag.NO_SUCH_FLAG adds a name to show it failing.
check-tensorrt: env
	$(RUN) python -m muon_ad_ros.bench.tensorrt_api $(if $(PLANT),--plant $(PLANT))
	$(RUN) python -m pytest -q -rs test/runtime/test_tensorrt_api.py

# For a machine with an NVIDIA GPU and no network (skips what it cannot run, with the reason).
gpu-check: env
	$(RUN) python -m muon_ad_ros.cli gpu-check --out $(OUT)/gpu_check

clean:
	rm -rf build install log $(OUT)
