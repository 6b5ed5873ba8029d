# Two commands on a fresh machine:
#   make demo   set up, build the patched CPU backend, fetch the default model, solve a sample problem with 2 workers
#   make test   set up, build the patched CPU backend, run the test suite (what .ci/run calls)
# Vulkan (docs/backend.md, "Vulkan"):
#   make vulkan-deps   install the Vulkan SDK and Mesa's software device (lavapipe) from Debian/Ubuntu packages
#                      (on Debian 12 a newer Mesa from bookworm-backports: scripts/vulkan_deps.sh says why)
#   make test-vulkan   build the Vulkan backend into .venv-vulkan and run the correctness suite on the Vulkan device

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BACKEND ?= cpu
SAMPLE := Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?

.PHONY: setup backend demo test clean vulkan-deps test-vulkan

# llama-cpp-python is not a dependency: `make backend` builds it with our patches (hogwild build-backend)
$(BIN)/hogwild: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,hf,build]'
	touch $@

setup: $(BIN)/hogwild

backend: setup
	$(BIN)/hogwild build-backend --backend $(BACKEND)

demo: backend
	$(BIN)/hogwild run --workers 2 "$(SAMPLE)"

test: backend
	$(BIN)/python -m pytest -q

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

vulkan-deps:
	$(SUDO) sh scripts/vulkan_deps.sh

# the backend and engine suites against the numpy reference with every layer on the Vulkan device, then a real run;
# ggml skips CPU-type devices (lavapipe) unless they are named, hence device 0 by default; the GPU tolerance
# of scripts/gpu_check.sh (GPU kernels accumulate in f16), and its head size (tests/where.py: GPU flash kernels
# take real head sizes only)
VK_DEVICES ?= 0
test-vulkan: export GGML_VK_VISIBLE_DEVICES = $(VK_DEVICES)
test-vulkan: export HOGWILD_TEST_TOLERANCE = 0.05
test-vulkan: export HOGWILD_TEST_HEAD_DIM = 128
test-vulkan:
	$(MAKE) backend VENV=.venv-vulkan BACKEND=vulkan
	HOGWILD_TEST_GPU_LAYERS=-1 .venv-vulkan/bin/python -m pytest -q -s tests/test_backend.py tests/test_families.py
	HOGWILD_TEST_GPU_LAYERS=-1 .venv-vulkan/bin/python -m pytest -q -s tests/test_engine.py \
		-k "match_reference or cut_and_dropped"
	.venv-vulkan/bin/hogwild run -m smollm2-135m -w 2 -b 48 -ngl -1 --no-color "$(SAMPLE)"

clean:
	rm -rf $(VENV) .venv-vulkan
