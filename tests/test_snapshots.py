"""One JSON snapshot per stack and environment; update on purpose with --snapshot-update."""

from __future__ import annotations

import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tavari_dr.core import outputs
from tavari_dr.core.config import load_environment
from tests.conftest import cdk_context

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def mask_assets(value):
    """Asset hashes (Lambda zips, container image tags) change with any byte of bundled code;
    the snapshot is about the shape."""
    if isinstance(value, dict):
        return {k: mask_assets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_assets(v) for v in value]
    if isinstance(value, str):
        return ASSET_HASH.sub("<asset-hash>", value)
    return value


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def expected_stacks(env_name: str) -> list[str]:
    """The stacks one cdk.json environment should synthesize, read from its config alone (so the list of
    snapshots is known before the session's synth; test_every_stack_has_a_snapshot holds it to the synth)."""
    config = load_environment(cdk_context(), env_name)
    purposes = [outputs.INVOICE_STORAGE, outputs.SECRETS, outputs.MONITORING, outputs.DATABASE_BACKUPS,
                outputs.DATA_EXPORT, outputs.TAMPER_WATCH]
    dr_region = config.replication.region if config.replication.enabled else None
    if dr_region:
        purposes += [outputs.INVOICE_REPLICA, outputs.SECRETS_REPLICA_KEY, outputs.DATABASE_BACKUPS + "Replica",
                     outputs.TAMPER_WATCH + "Dr"]
        if config.cross_account_replication:
            purposes += [outputs.TAMPER_WATCH + "BackupDr"] + ([outputs.TAMPER_WATCH + "BackupGlobal"]
                                                               if dr_region != "us-east-1" else [])
    if "us-east-1" not in (config.region, dr_region):
        purposes.append(outputs.TAMPER_WATCH + "Global")
    if config.pipeline.enabled:
        purposes.append(outputs.DEPLOY_ROLES)
    return sorted(config.stack_name(p) for p in purposes)


ENVIRONMENTS = list(cdk_context()["environments"])  # every environment of cdk.json, staging too once added
STACKS = [(env, stack) for env in ENVIRONMENTS for stack in expected_stacks(env)]


def test_every_stack_has_a_snapshot(synthesized):
    assert {s for e in ENVIRONMENTS for s in synthesized[e].templates} == {s for _, s in STACKS}


@pytest.mark.parametrize(("env_name", "stack"), STACKS, ids=[s for _, s in STACKS])
def test_template_snapshot(synthesized, snapshot_json, env_name, stack):
    assert mask_assets(synthesized[env_name].templates[stack]) == snapshot_json
