# One entry point for everything: `make run` and `make test` set up what they need, idempotently.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The install stamp changes whenever the declared or locked dependencies change, so a second run is a no-op.
DEPS_HASH := $(shell cat pyproject.toml sdk/pyproject.toml requirements.lock 2>/dev/null | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
# The zero-knowledge toolchain (snarkjs, circom2; GPL-3.0 build tools run as separate Node processes).
ZK_STAMP := zk/node_modules/.installed-$(shell sha256sum zk/package-lock.json 2>/dev/null | cut -c1-16)
# The local IPFS (js-ipfs) and Arweave (arlocal) nodes of the permanent-storage tests (infra/local/nodes.py).
# npm ci there takes minutes (sqlite3 compiles from source), so each lock's install is kept once per machine
# in NODES_CACHE and nodes/node_modules links to it.
NODES_HASH := $(shell cat nodes/package.json nodes/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
NODES_CACHE := $(HOME)/.cache/reliquary/nodes/$(NODES_HASH)
NODES_STAMP := nodes/.installed-$(NODES_HASH)
PYTEST_WORKERS ?= 2
# The SAM CLI pins its own boto3 (1.43.x) and click (8.1.x), which clash with ours: it lives in its own venv.
# cfn-lint is pinned to the version in requirements.lock so both linters judge the template alike.
SAM_VENV := .venv-sam
SAM_PINS := aws-sam-cli==1.170.0 cfn-lint==1.58.0
SAM_STAMP := $(SAM_VENV)/.installed-$(shell echo '$(SAM_PINS)' | sha256sum | cut -c1-16)
# uv installs the locked dependencies (about 5 s against pip's minute on a fresh clone); pip installs uv.
UV_PIN := uv==0.13.9
UV := $(VENV)/bin/uv
# `sam validate --lint` runs offline: a fake region and fake credentials, never a developer's own profile.
SAM_ENV := env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN \
	AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
	AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	SAM_CLI_TELEMETRY=0

.PHONY: help setup sam-setup browser-setup run test unit lint bench sizes native native-local zk-setup nodes-setup zk lock openapi clean

help:
	@echo "make run    - set up and run RELIQUARY locally (moto on 127.0.0.1:4566, no Docker, no cloud)"
	@echo "make test   - set up, lint (ruff, mypy --strict, cfn-lint, sam validate --lint, statelint), run every test but the bench smoke tests"
	@echo "make bench  - set up, run the bench smoke tests, print the benchmark tables"
	@echo "make sizes  - each function's unzipped size, code + layers (one \`sam build\`, cached by its inputs)"
	@echo "make browser-setup - install Debian's chromium for the browser tests when missing (root or sudo)"
	@echo "make setup  - only install: .venv with the locked dependencies, the native layer"
	@echo "make native - rebuild the native layer (liboqs from the pinned wheel) for local use"
	@echo "make zk     - rebuild the circuits, the development ceremony and the verification keys (minutes)"
	@echo "make lock   - re-resolve requirements.lock from pyproject.toml"
	@echo "make openapi - regenerate docs/openapi.json from the API's app and docs/api-reference.md from it (a test fails while either differs)"

setup: $(STAMP) native-local zk-setup

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(UV_PIN)

$(STAMP): pyproject.toml sdk/pyproject.toml requirements.lock | $(UV)
	$(UV) pip install --quiet --python $(PY) -c requirements.lock -e '.[dev]' -e './sdk[cli]'
	@rm -f $(VENV)/.installed-* && touch $@

# The layer's own Makefile knows what is out of date (liboqs, the Merkle library); a no-op run takes ms.
native-local: $(STAMP)
	@$(MAKE) --no-print-directory -C layers/native local PYTHON=$(abspath $(PY))

# Only `make lint` needs the SAM CLI (a separate venv, installed by the project venv's uv: seconds).
sam-setup: $(SAM_STAMP)

$(SAM_STAMP): | $(UV)
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(UV) pip install --quiet --python $(SAM_VENV)/bin/python $(SAM_PINS)
	@rm -f $(SAM_VENV)/.installed-* && touch $@

zk-setup: $(ZK_STAMP)

$(ZK_STAMP): zk/package.json zk/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are required (proving, and checking the verification keys)"; exit 1; }
	npm ci --prefix zk --no-audit --no-fund --loglevel=error
	@touch $@

nodes-setup: $(NODES_STAMP)

$(NODES_STAMP): nodes/package.json nodes/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are required (the local IPFS and Arweave nodes)"; exit 1; }
	@# Optional dependencies left out: js-ipfs's WebRTC transports (electron, wrtc) download binaries at install.
	@if [ ! -f $(NODES_CACHE)/.complete ]; then \
		echo "installing the local IPFS and Arweave nodes into $(NODES_CACHE) (a few minutes, once per lock)"; \
		rm -rf $(NODES_CACHE) && mkdir -p $(NODES_CACHE) && cp nodes/package.json nodes/package-lock.json $(NODES_CACHE)/ && \
		npm ci --prefix $(NODES_CACHE) --omit=optional --no-audit --no-fund --loglevel=error && \
		touch $(NODES_CACHE)/.complete; \
	fi
	@rm -rf nodes/node_modules nodes/.installed-* && ln -s $(NODES_CACHE)/node_modules nodes/node_modules
	@touch $@

# Recompiles every circuit and redoes the development ceremony; the results are committed (zk/keys, zk/wasm).
zk: zk-setup
	npm --prefix zk run build
	@for c in zk/keys/*.vkey.json zk/keys/*.signals.json; do cp "$$c" layers/core/reliquary/zk/keys/; done

native: $(STAMP)
	$(MAKE) -C layers/native clean-local
	$(MAKE) -C layers/native local PYTHON=$(abspath $(PY))

# `make run NODES=1` also starts local IPFS and Arweave nodes, with vaults whose bodies go there.
run: setup $(if $(NODES),nodes-setup)
	$(PY) -m infra.local $(if $(NODES),--nodes)

lint: setup sam-setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --template template.yaml --region us-east-1
	$(PY) tools/lint_state_machine.py

unit: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m 'not bench' tests/unit tests/vectors

# The browser tests (tests/browser) drive Debian's Chromium; installed here when missing, never by Playwright.
browser-setup:
	@tools/ensure_chromium.sh

# The bench smoke tests (marker `bench`: every section with tiny budgets, three on stacks of their own) run
# with `make bench`, where their code is used; every other test runs here.
test: lint browser-setup nodes-setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m 'not bench'

# The smoke tests first: a broken section fails in a few minutes, not after the full run.
bench: setup
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -m bench
	$(PY) -m tests.bench.run

sizes: setup sam-setup
	$(PY) -m tests.bench.run --only sizes

openapi: setup
	$(PY) tools/openapi.py

lock:
	rm -rf /tmp/reliquary-lock && $(PYTHON) -m venv /tmp/reliquary-lock
	/tmp/reliquary-lock/bin/pip install --quiet '.[dev]'
	/tmp/reliquary-lock/bin/pip freeze --exclude-editable | grep -v '^reliquary' > requirements.lock

clean:
	rm -rf $(VENV) $(SAM_VENV) .pytest_cache .mypy_cache .ruff_cache
	$(MAKE) -C layers/native clean-local
