# Every quality gate in one place; README's two commands are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
# Third-party packages for the Lambda platform; bundled at synth by the functions that need them.
# --no-deps: requirements-lambda.txt pins the whole closure itself, less what the runtime's boto3
# brings (botocore, jmespath); tests/test_lambda_assets.py checks every bundle's closure.
LAMBDA_DEPS := build/lambda-deps
ENVS = $(shell $(PY) -c "import json; print(' '.join(json.load(open('cdk.json'))['context']['environments']))")
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20
export AWS_REGION ?= eu-west-1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run synth test lint bench clean postgres-binaries

install: $(VENV)/.installed node_modules/.installed $(LAMBDA_DEPS)/.installed postgres-binaries

# The database tests start a throwaway PostgreSQL cluster: they need the server binaries.
postgres-binaries:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL server binaries missing: sudo apt-get install postgresql" >&2; exit 1; fi; }

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(LAMBDA_DEPS)/.installed: requirements-lambda.txt $(VENV)/.installed
	rm -rf $(LAMBDA_DEPS)
	$(PY) -m pip install --quiet --target $(LAMBDA_DEPS) --implementation cp --python-version 3.14 \
	  --platform manylinux2014_x86_64 --only-binary=:all: --no-compile --no-deps -r requirements-lambda.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The main job (offline, no AWS account): synthesize every environment with the pinned
# CDK CLI, nag-clean; then a full disaster-recovery drill of prod on this machine (emulated
# AWS, throwaway PostgreSQL) with its report in drill-report/.
DRILL_ENV ?= prod
DRILL_REPORT ?= drill-report
run: synth
	$(PY) -m tavari_dr drill --local --env $(DRILL_ENV) --report-dir $(DRILL_REPORT)

synth: install
	rm -rf cdk.out
	for env in $(ENVS); do $(CDK) synth -c env=$$env -o cdk.out/$$env -q || exit 1; done
	$(PY) -m tavari_dr.cli.synth_summary $(addprefix cdk.out/,$(ENVS))

# ruff, then the import contracts in pyproject.toml ([tool.importlinter]): the layers of tavari_dr,
# what the stacks and each Lambda handler may import, and no cycles.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: install lint
	$(VENV)/bin/pytest -q

bench: install
	bash benches/synth.sh

clean:
	rm -rf cdk.out .pytest_cache drill-report .import_linter_cache .grimp_cache
