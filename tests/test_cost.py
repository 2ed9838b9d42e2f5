"""benches/cost.py: the monthly cost of each environment follows cdk.json's sizes and the templates, and the
the cost page's table (docs/deploy/costs.md) is the script's output."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from datetime import date

import pytest
from aws_cdk.assertions import Template

from tavari_dr.core.config import load_environment
from tests.conftest import ROOT, cdk_context

# benches/ is scripts, not a package: load the script as the module it is.
_spec = importlib.util.spec_from_file_location("benches_cost", ROOT / "benches" / "cost.py")
cost = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = cost  # dataclasses look their module up there
_spec.loader.exec_module(cost)

ENVIRONMENTS = list(cdk_context()["environments"])


@pytest.fixture(scope="module")
def templates_of(synthesized):
    return {name: synthesized[name].templates for name in ENVIRONMENTS}


def test_the_readme_table_is_the_scripts_output(templates_of):
    prices = cost.Prices()
    assert cost.readme_table() == cost.markdown(cost.estimates(templates_of, prices), prices), \
        "docs/deploy/costs.md's cost table is stale: run .venv/bin/python benches/cost.py --update-readme"


def test_every_environment_of_cdk_json_is_priced(templates_of):
    table = cost.readme_table()
    assert all(f"`{name}`" in table.splitlines()[2] for name in ENVIRONMENTS)


def _lines(estimate, group):
    return {line.item: line for line in estimate.lines if line.group == group}


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_storage_follows_the_cdk_json_sizes(templates_of, env_name):
    context = copy.deepcopy(cdk_context())
    drill = context["environments"][env_name].setdefault("drill", {})
    config = load_environment(context, env_name)
    base = cost.estimate(config, templates_of[env_name], cost.Prices())
    drill.update(invoice_gb=config.drill.invoice_gb * 3, database_gb=config.drill.database_gb * 2)
    grown = cost.estimate(load_environment(context, env_name), templates_of[env_name], cost.Prices())
    before, after = _lines(base, "S3 storage"), _lines(grown, "S3 storage")
    invoices = "invoices, current versions (Standard)"
    assert before[invoices].quantity == config.drill.invoice_gb
    assert after[invoices].quantity == config.drill.invoice_gb * 3
    backups = "database backups (Standard, Object Lock)"
    assert before[backups].quantity == pytest.approx(cost.retained_backups(config) * config.drill.database_gb)
    assert after[backups].quantity == pytest.approx(2 * before[backups].quantity)
    assert base.sizes["invoice_gb"] == config.drill.invoice_gb and base.sizes["database_gb"] == config.drill.database_gb
    assert grown.total > base.total
    assert grown.aws_backup_total == pytest.approx(3 * base.aws_backup_total)  # per GB-month of invoices


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_keys_secrets_and_jobs_come_from_the_templates(templates_of, env_name):
    templates = templates_of[env_name]
    estimate = cost.estimate(load_environment(cdk_context(), env_name), templates, cost.Prices())
    keys = sum(len(Template.from_json(t).find_resources("AWS::KMS::Key")) for t in templates.values())
    assert _lines(estimate, "KMS")[f"customer managed keys ({keys})"].quantity == keys
    secrets = [r["Properties"] for t in templates.values() for r in t["Resources"].values()
               if r["Type"] == "AWS::SecretsManager::Secret"]
    (line,) = _lines(estimate, "Secrets Manager").values()
    assert line.quantity == sum(1 + len(s.get("ReplicaRegions", [])) for s in secrets)
    fargate = _lines(estimate, "Fargate")
    assert {item.split(":")[0] for item in fargate} == {
        "db backup (pg_dump, upload)", "db verify --quick (sha256, table of contents)",
        "db verify (full restore into the sidecar)"}
    assert any(item.endswith("2 vCPU, 8 GB") for item in fargate)  # the restore test's task definition


def test_replication_lines_only_where_replication_is_on(templates_of):
    for name in ENVIRONMENTS:
        config = load_environment(cdk_context(), name)
        estimate = cost.estimate(config, templates_of[name], cost.Prices())
        assert bool(_lines(estimate, "Replication")) == config.replication.enabled


@pytest.mark.parametrize(("expression", "per_year"), [
    ("cron(0 1,13 * * ? *)", 2 * 365),
    ("cron(0 4 ? * SUN *)", 52),  # 2027 has 52 Sundays
    ("cron(0 5 1 * ? *)", 12),
    ("cron(0 9 ? 1,4,7,10 MON#1 *)", 4),
    ("rate(1 day)", 365),
    # Steps, weekday ranges, years: the grammar tavari_dr.core.schedule reads for config validation,
    # counted by the same parser (2027: 261 weekdays, 53 Fridays).
    ("cron(0/30 8-17 ? * MON-FRI *)", 20 * 261),
    ("cron(*/15 * * * ? *)", 96 * 365),
    ("cron(0 12 ? * 6#5 *)", 5),  # months with a fifth Friday in 2027: Jan, Apr, Jul, Oct, Dec
    ("cron(0 2 1 * ? 2028)", 0),
])
def test_schedule_runs_are_counted_over_a_fixed_year(expression, per_year):
    assert cost.runs_per_month(expression) * 12 == pytest.approx(per_year)


def test_backups_held_follow_the_tiers():
    config = load_environment(cdk_context(), "prod")
    tiers = {t.name: t.retention_days + 1 for t in config.database_backups.tiers}
    days = [date(2027, 1, 1).toordinal() + n for n in range(365)]
    firsts = sum(date.fromordinal(d).day == 1 for d in days)
    sundays = sum(date.fromordinal(d).weekday() == 6 and date.fromordinal(d).day != 1 for d in days)
    per_day = cost.runs_per_month(config.database_backups.schedule) * 12 / 365
    expected = per_day * (firsts * tiers["monthly"] + sundays * tiers["weekly"]
                          + (365 - firsts - sundays) * tiers["daily"]) / 365
    assert cost.retained_backups(config) == pytest.approx(expected)


def test_the_price_table_is_dated_and_sourced():
    document = json.loads(cost.PRICES.read_text())
    date.fromisoformat(document["as_of"])
    assert cost.PRICES.name == f"prices-{document['as_of'][:7]}.json"
    for name, entry in document["prices"].items():
        assert entry["source"].startswith("https://aws.amazon.com/"), name
        assert entry["by_region"] and all(v > 0 for v in entry["by_region"].values()), name


def test_a_region_without_prices_is_refused_by_name(templates_of):
    context = copy.deepcopy(cdk_context())
    context["environments"]["dev"]["region"] = "ap-south-2"
    with pytest.raises(SystemExit, match="no price for ap-south-2"):
        cost.estimate(load_environment(context, "dev"), templates_of["dev"], cost.Prices())
