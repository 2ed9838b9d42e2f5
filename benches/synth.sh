#!/usr/bin/env bash
# Times what a developer waits for: synth of every environment with the pinned CDK CLI
# (one process per environment, as `cdk synth -c env=NAME` runs, nag on) and the
# unit/synth test suite (which synthesizes once per session). Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 AWS_REGION=${AWS_REGION:-eu-west-1}
export PATH="$PWD/.venv/bin:$PATH"  # cdk.json runs `python3 app.py`: the project venv
PY=.venv/bin/python
envs=$($PY -c "import json; print(' '.join(json.load(open('cdk.json'))['context']['environments']))")
out=$(mktemp -d)
now() { date +%s.%N; }
elapsed() { $PY -c "print(f'{$2 - $1:.2f}')"; }

t0=$(now)
for env in $envs; do
  node_modules/.bin/cdk synth -c env="$env" -o "$out/$env" -q >/dev/null 2>&1 || { echo "synth of $env failed"; exit 1; }
done
t1=$(now)
.venv/bin/pytest -q -p no:cacheprovider -m "not moto and not postgres and not drill" >/dev/null
t2=$(now)
.venv/bin/pytest -q -p no:cacheprovider -m "(moto or postgres) and not drill" >/dev/null
t3=$(now)
.venv/bin/pytest -q -p no:cacheprovider -m drill >/dev/null
t4=$(now)
echo "machine: $(nproc) cores, $(python3 --version 2>&1), node $(node --version)"
printf 'cdk synth, every environment (%s), CLI: %6.2f s   (target <= 15 s)\n' "$envs" "$(elapsed "$t0" "$t1")"
printf 'pytest unit/synth suite:                      %6.2f s   (target <= 60 s)\n' "$(elapsed "$t1" "$t2")"
printf 'pytest moto + PostgreSQL suites:              %6.2f s\n' "$(elapsed "$t2" "$t3")"
printf 'pytest local drill suite (-m drill):          %6.2f s\n' "$(elapsed "$t3" "$t4")"
rm -rf "$out"
