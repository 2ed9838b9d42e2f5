"""Shared fixtures. Dummy credentials first: no test may ever reach AWS."""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
})
os.environ.pop("AWS_PROFILE", None)

ROOT = Path(__file__).resolve().parent.parent
XACCT = "210987654321"
XACCT_KEY_ARN = f"arn:aws:kms:eu-central-1:{XACCT}:key/0f0e0d0c-1111-2222-3333-444455556666"
XACCT_BACKUP_KEY_ARN = f"arn:aws:kms:eu-central-1:{XACCT}:key/0b0b0b0b-1111-2222-3333-444455556666"


def alarm_runbook_sections() -> set[str]:
    """The section IDs of docs/runbooks/alarms.md (each ``<a id="..."></a>`` before its heading: the ID an alarm
    links, the same on GitHub and on the docs site; tests/test_docs_site.py checks them in the built site)."""
    runbook = (ROOT / "docs" / "runbooks" / "alarms.md").read_text()
    return set(re.findall(r'^<a id="([A-Za-z0-9_-]+)"></a>$', runbook, re.M))


def cdk_context() -> dict:
    """The context `cdk synth` sees: cdk.json's, feature flags included."""
    return json.loads((ROOT / "cdk.json").read_text())["context"]


@dataclass
class Synthesized:
    """One environment synthesized once for the whole session."""

    name: str
    outdir: Path
    templates: dict[str, dict]  # stack name -> template JSON
    warnings: list[str]
    built: Any = None  # the TavariApp: its constructs, for Stack.resolve in assertions

    def template(self, purpose: str):
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[self.stack(purpose)])

    def stack(self, purpose: str) -> str:
        from tavari_dr.core.config import stack_name

        return stack_name(self.name.split("-")[0], purpose)


def _synth(name: str, context: dict, outdir: Path) -> Synthesized:
    from aws_cdk import App

    from stacks.app import build_app
    from tavari_dr.core.config import load_environment

    app = App(context=context, outdir=str(outdir))
    built = build_app(app, load_environment(context))
    assembly = app.synth()
    warnings = [
        str(m.entry.data)
        for artifact in assembly.stacks
        for m in artifact.messages
        if str(m.level).lower().endswith("warning")
    ]
    templates = {s.stack_name: s.template for s in assembly.stacks}
    return Synthesized(name, outdir, templates, warnings, built)


def cross_account_context(with_key: bool) -> dict:
    context = copy.deepcopy(cdk_context())
    prod = context["environments"]["prod"]
    prod["replication"]["account"] = XACCT
    if with_key:
        prod["replication"]["replica_key_arn"] = XACCT_KEY_ARN
        prod["replication"]["backup_replica_key_arn"] = XACCT_BACKUP_KEY_ARN
    context["env"] = "prod"
    return context


EXISTING_TRAIL_ARN = "arn:aws:cloudtrail:us-east-1:999999999999:trail/org-trail"


def existing_trail_context() -> dict:
    """dev with security.trail_arn naming an organization trail: no trail of ours, a synth warning."""
    context = copy.deepcopy(cdk_context())
    context["environments"]["dev"]["security"] = {"trail_arn": EXISTING_TRAIL_ARN}
    context["env"] = "dev"
    return context


APP_ROLE_ARN = "arn:aws:iam::123456789012:role/tavari-app"
COPY_VAULT_ARN = "arn:aws:backup:eu-central-1:210987654321:backup-vault:tavari-invoices"


def app_principal_context() -> dict:
    """prod with the optional features on: application role grants and AWS Backup."""
    context = copy.deepcopy(cdk_context())
    bucket = context["environments"]["prod"]["invoice_bucket"]
    bucket["app_principal_arn"] = APP_ROLE_ARN
    bucket["aws_backup_enabled"] = True
    bucket["aws_backup_copy_vault_arn"] = COPY_VAULT_ARN
    context["env"] = "prod"
    return context


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> dict[str, Synthesized]:
    """Every cdk.json environment plus two cross-account variants, synthesized once, nag on."""
    results = {}
    for name in cdk_context()["environments"]:
        results[name] = _synth(name, {**cdk_context(), "env": name}, tmp_path_factory.mktemp(f"cdk-{name}"))
    results["prod-xacct"] = _synth("prod-xacct", cross_account_context(True), tmp_path_factory.mktemp("xacct"))
    results["prod-xacct-pending"] = _synth(
        "prod-xacct-pending", cross_account_context(False), tmp_path_factory.mktemp("pending"))
    results["prod-app"] = _synth("prod-app", app_principal_context(), tmp_path_factory.mktemp("app"))
    results["dev-trail"] = _synth("dev-trail", existing_trail_context(), tmp_path_factory.mktemp("trail"))
    return results


def arm64_context() -> dict:
    """prod on Graviton: compute.architecture = arm64."""
    context = copy.deepcopy(cdk_context())
    context["environments"]["prod"]["compute"] = {"architecture": "arm64"}
    context["env"] = "prod"
    return context


@pytest.fixture(scope="session")
def prod_arm64(tmp_path_factory) -> Synthesized:
    """prod with compute.architecture = arm64, synthesized once for the session (only where a test asks)."""
    return _synth("prod-arm64", arm64_context(), tmp_path_factory.mktemp("arm64"))


@pytest.fixture(scope="session")
def dev(synthesized):
    return synthesized["dev"]


@pytest.fixture(scope="session")
def prod(synthesized):
    return synthesized["prod"]


@pytest.fixture(scope="module")
def db():
    """A throwaway PostgreSQL cluster (one per test module) holding the Supabase-like Tavari schema
    with three tenants: 5 calls and 7 messages per business."""
    from tavari_dr.drill import demo_data
    from tavari_dr.drill.pgcluster import LocalPostgres

    with LocalPostgres() as pg:
        url = pg.create_database("tavari")
        demo_data.create_supabase_like(url)
        demo_data.seed(url, businesses=3, calls=5, messages=7)
        yield url


@pytest.fixture(scope="module")
def pg():
    """A throwaway PostgreSQL cluster per test module, for tests that create their own databases."""
    from tavari_dr.drill.pgcluster import LocalPostgres

    with LocalPostgres() as cluster:
        yield cluster


_databases = itertools.count()


@pytest.fixture
def source(pg):
    """A fresh Supabase-like demo database (the seeded Tavari schema) on the module's cluster."""
    from tavari_dr.drill import demo_data

    url = pg.create_database(f"source_{next(_databases)}")
    demo_data.create_supabase_like(url)
    demo_data.seed(url)
    return url


@pytest.fixture
def empty_db(pg):
    """Makes an empty database on the module's cluster, one per call."""
    return lambda: pg.create_database(f"target_{next(_databases)}")


@pytest.fixture
def signing(s3):
    """The backup manifests' signing key on the moto of the module's ``s3`` fixture."""
    from tests.backups import Signing

    return Signing()


def owners(url: str) -> list[str]:
    """The tenants' user IDs, in a stable order."""
    import psycopg

    with psycopg.connect(url) as conn:
        return [str(r[0]) for r in conn.execute("SELECT owner_id FROM public.businesses ORDER BY owner_id")]
