"""The escalation chain (cdk.json ``escalation``): validated by the loader, generated into
docs/runbooks/escalation.md, carried to every alert by the Monitoring stack, and refused at a deploy of an
environment that retains its data while a contact is still UNSET (never at synth: `make run` synthesizes prod)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from tavari_dr.alerts import escalation
from tavari_dr.core.config import (
    DEPLOY_CONTEXT_KEY,
    ConfigError,
    load_all,
    load_environment,
    parse_escalation,
    refuse_placeholder_contacts,
)
from tests.conftest import ROOT, cdk_context

SET = [{"name": "Ana Duty", "role": "On-call engineer", "channel": "PagerDuty", "reach": "+44 20 7946 0000"},
       {"name": "Ben Lead", "role": "Technical lead", "channel": "#incidents on Slack",
        "reach": "https://tavari.example/oncall"},
       {"name": "Cleo Boss", "role": "Management", "channel": "Email", "reach": "cleo@tavari.example"}]


def with_contacts(contacts, env="prod", account="111122223333") -> dict:
    context = copy.deepcopy(cdk_context())
    context["environments"][env]["account"] = account
    context["environments"][env]["escalation"] = {"contacts": contacts}
    return context


def test_the_generated_escalation_page_is_current():
    page = (ROOT / "docs" / "runbooks" / "escalation.md").read_text()
    assert escalation.page_block(page) == escalation.markdown(load_all(cdk_context())), \
        "docs/runbooks/escalation.md is stale: run .venv/bin/python -m tavari_dr.alerts.escalation --write"


def test_contacts_are_read_in_order_and_each_field_is_checked():
    config = load_environment(with_contacts(SET), "prod")
    assert [c.name for c in config.escalation.contacts] == ["Ana Duty", "Ben Lead", "Cleo Boss"]
    assert config.escalation.placeholders() == ()
    bad = copy.deepcopy(SET)
    bad[1]["reach"] = "call Ben"
    with pytest.raises(ConfigError, match=r'^environments\.prod\.escalation\.contacts\[1\]\.reach: "call Ben" is not '
                                          r"allowed; use a phone number \(\+ then digits\), an https:// URL"):
        load_environment(with_contacts(bad), "prod")
    with pytest.raises(ConfigError, match=r"escalation\.contacts\[0\]\.pager: unknown key"):
        load_environment(with_contacts([{**SET[0], "pager": "x"}]), "prod")
    with pytest.raises(ConfigError, match=r"escalation\.contacts: \[\] is not allowed; use a non-empty list"):
        load_environment(with_contacts([]), "prod")


def test_a_deploy_of_prod_with_placeholder_contacts_is_refused_and_says_where_to_set_them():
    """The account is set (its own guard passes); the contacts are cdk.json's, still UNSET."""
    context = copy.deepcopy(cdk_context())
    context["environments"]["prod"]["account"] = "111122223333"
    assert "escalation" not in context["environments"]["prod"]  # the defaults: every contact UNSET
    context = {**context, "env": "prod", DEPLOY_CONTEXT_KEY: "true"}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'configuration error: environments.prod.escalation.contacts[0]: the On-call engineer is still "UNSET"; set '
        "their name and reach (phone, URL or email) in cdk.json before deploying (removal_policy retain: an "
        "incident here pages someone)")


def test_the_guard_passes_set_contacts_and_an_environment_that_keeps_nothing():
    refuse_placeholder_contacts(load_environment(with_contacts(SET), "prod"))
    refuse_placeholder_contacts(load_environment(cdk_context(), "dev"))  # removal_policy destroy
    with pytest.raises(ConfigError, match=r"contacts\[2\]: the Management is still"):
        refuse_placeholder_contacts(load_environment(with_contacts([*SET[:2], {**SET[2], "name": "UNSET"}]), "prod"))


def test_the_alert_router_carries_prods_chain(prod):
    (router,) = [r["Properties"] for r in prod.templates["Tavari-Prod-Monitoring"]["Resources"].values()
                 if r["Type"] == "AWS::Lambda::Function"
                 and "ESCALATION" in r["Properties"].get("Environment", {}).get("Variables", {})]
    carried = parse_escalation(router["Environment"]["Variables"]["ESCALATION"])
    assert carried == load_environment(cdk_context(), "prod").escalation
    assert escalation.alert_lines(carried)[0].startswith("Escalate: 1. On-call engineer: ")
