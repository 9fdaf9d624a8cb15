# Each target sets up .venv from nothing on first use, so a fresh clone
# needs only `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(PLUGINS))
RUN_DIR ?= runs/fcnn

.PHONY: install train test native-test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt CMakeLists.txt $(wildcard csrc/*) $(PLUGINS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,plot]" $(addprefix -e ,$(PLUGIN_DIRS))
	touch $@

# The main job: train the reference network on the digits images and report.
train: $(STAMP)
	$(BIN)/fcnnzoo train fcnn --dataset digits --epochs 10 --seed 0 --out $(RUN_DIR)
	$(BIN)/fcnnzoo eval $(RUN_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest benchmarks --benchmark-disable -q

# The C++ kernel tests under AddressSanitizer and UndefinedBehaviorSanitizer,
# once per instruction-set level; needs cmake and a compiler, not the venv.
native-test:
	scripts/native-tests.sh build/native-tests

bench: $(STAMP)
	mkdir -p runs
	$(BIN)/python -m pytest benchmarks --benchmark-json=runs/benchmarks.json

clean:
	rm -rf $(VENV) build runs .pytest_cache .benchmarks
