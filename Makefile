# Two commands on a fresh machine:
#   make demo   set up, build the patched CPU backend, fetch the default model, solve a sample problem with 2 workers
#   make test   set up, build the patched CPU backend, run the test suite (what .ci/run calls)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BACKEND ?= cpu
SAMPLE := Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?

.PHONY: setup backend demo test clean

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

clean:
	rm -rf $(VENV)
