# Two entry points for a fresh machine: `make run` (set up, then open the desktop app, whose first
# screen runs the built-in model on the sample data in one click) and `make test` (set up, then the
# whole test suite). Both create .venv on first use. `make demo` is the same job on the command line.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.knowmix-installed

.PHONY: run demo test check setup screenshots clean lock

# packaging/setup_venv.py installs the pinned versions (packaging/constraints.txt), builds llama.cpp
# for this CPU and OS (never AMX, never a wheel from pip's cache), checks it with a one-token decode
# of the built-in model in a child process, and rebuilds the safe way (AVX2) if that crashes.
$(STAMP): pyproject.toml Makefile packaging/constraints.txt packaging/setup_venv.py core/llama_cpu.py
	$(PYTHON) packaging/setup_venv.py --venv $(VENV)
	touch $(STAMP)

# `make setup` always runs the set-up again (quick when nothing changed: pins are checked and the
# one-token decode repeated), so it is also the fix when llama.cpp stops working here.
setup:
	$(PYTHON) packaging/setup_venv.py --venv $(VENV)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/knowmix

demo: $(STAMP)
	$(BIN)/knowmix demo

test: $(STAMP) check
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15

# The house rules, before the suite: lint, format, types of core, and the import contracts in
# pyproject.toml (core's floors; gui reaches core's packages only through their public faces; core never
# imports gui/Qt; backends only through their registry; SQL only in the store), then tools/house_rules.py
# (no module in core/ or gui/ over 600 lines, no function over 8 parameters).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/house_rules.py

# A PNG of every step, driven with real data (the built-in model, the sample, a short LoRA run).
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m gui.screenshots docs/screenshots

clean:
	rm -rf $(VENV) build *.egg-info

# Refresh packaging/constraints.txt to the newest releases pyproject.toml allows (then: make test, commit).
lock:
	$(PYTHON) packaging/lock.py

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

# Builds the lite edition from its own venv and wheel folder (never pip's cache) and runs its
# --self-check (offscreen): a separate suite, not in `make test`. Its pytest comes from .venv.
package-test: $(STAMP)
	KNOWMIX_PACKAGE_TEST=1 $(BIN)/python -m pytest -q -p no:cacheprovider packaging/tests

package-clean:
	rm -rf packaging/build
