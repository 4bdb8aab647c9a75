# Two entry points (see README): `make demo` runs the main job, `make test` the suite.
#
# `make demo` installs the package with the [local] extra only (the runtime and the embedded
# DynamoDB endpoint the demo's table runs on); `make test` adds the [test] extra (pytest,
# hypothesis, moto with S3, cfn-lint, ruff, mypy). Each install is recorded by a stamp named
# after pyproject.toml's checksum, so editing pyproject.toml reinstalls.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUM := $(shell cksum < pyproject.toml | cut -d' ' -f1)
DEMO_STAMP := $(VENV)/.installed-local-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)

.PHONY: demo test bench clean rebuild-venv

# A .venv whose python no longer runs (its base interpreter moved or was removed) or that
# has no pip (what a failed `python3 -m venv` leaves on Debian without python3-venv) makes
# every stamp out of date, and the recipe below makes the environment again.
ifneq ($(shell $(BIN)/python -c 'import pip' >/dev/null 2>&1 && echo ok),ok)
REBUILD := rebuild-venv
endif

rebuild-venv:

define make_venv
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required; run make PYTHON=python3.X") if sys.version_info < (3, 11) else None'
	@if ! $(BIN)/python -c 'import pip' >/dev/null 2>&1; then \
	  echo "creating $(VENV) with $(PYTHON)"; \
	  rm -rf $(VENV); \
	  if ! { $(PYTHON) -m venv $(VENV) >/dev/null 2>&1 && $(BIN)/python -c 'import pip' >/dev/null 2>&1; }; then \
	    rm -rf $(VENV); \
	    echo "$(PYTHON) -m venv cannot make an environment with pip (on Debian or Ubuntu: apt install python3-venv)" >&2; \
	    exit 1; \
	  fi; \
	fi
endef

# $(1): what to install. Quiet unless it fails: then pip's whole output is shown.
install = echo "installing $(1) into $(VENV)" && \
	{ $(BIN)/python -m pip install --disable-pip-version-check -e '$(1)' > $(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log >&2; echo "pip install -e '$(1)' failed (log above)" >&2; exit 1; }; }
# Stamps of an older pyproject.toml go; this one records what was installed.
stamp = find $(VENV) -maxdepth 1 -name '.installed-*' ! -name '*-$(SUM)' -delete && touch $@

$(TEST_STAMP): pyproject.toml $(REBUILD)
	$(make_venv)
	@$(call install,.[test])
	@$(stamp)

# The test extras hold everything the demo needs: after `make test`, `make demo` installs nothing.
$(DEMO_STAMP): pyproject.toml $(REBUILD)
	$(make_venv)
	@if [ -f $(TEST_STAMP) ]; then :; else $(call install,.[local]); fi
	@$(stamp)

demo: $(DEMO_STAMP)
	$(BIN)/policy-engine demo

# Lint and type-check first: they take seconds and fail fast. Each line is its own shell
# command, so any non-zero exit (including pytest's 5 for "no tests collected") fails `make`.
test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/decision.py
	$(BIN)/python benchmarks/gateway.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
