# The whole set-up on a fresh machine is `make repro` or `make test`; both are idempotent.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: install repro test lint bench clean-venv

install: $(STAMP)

# Re-install only when the pins change; the stamp marks a finished install.
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -qq --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -qq --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# DVC stages call `maskcls`, so the venv's bin goes first on PATH.
repro: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

lint: install
	$(VENV)/bin/ruff check src tests bench

test: lint
	$(VENV)/bin/pytest -n 2 --dist loadgroup

bench: install
	$(PY) bench/input_pipeline.py --out bench/results/input_pipeline.json

clean-venv:
	rm -rf $(VENV)
