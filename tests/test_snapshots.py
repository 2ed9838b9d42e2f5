"""One JSON snapshot per stack and environment; update on purpose with --snapshot-update."""

from __future__ import annotations

import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

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


STACKS = [("dev", "Tavari-Dev-InvoiceStorage"), ("dev", "Tavari-Dev-Secrets"),
          ("prod", "Tavari-Prod-InvoiceStorage"), ("prod", "Tavari-Prod-InvoiceReplica"),
          ("prod", "Tavari-Prod-Secrets"), ("prod", "Tavari-Prod-SecretsReplicaKey"),
          ("dev", "Tavari-Dev-Monitoring"), ("prod", "Tavari-Prod-Monitoring"),
          ("dev", "Tavari-Dev-DatabaseBackups"), ("prod", "Tavari-Prod-DatabaseBackups"),
          ("prod", "Tavari-Prod-DatabaseBackupsReplica"), ("dev", "Tavari-Dev-DataExport"),
          ("prod", "Tavari-Prod-DataExport"), ("dev", "Tavari-Dev-TamperWatch"),
          ("dev", "Tavari-Dev-TamperWatchGlobal"),
          ("prod", "Tavari-Prod-TamperWatch"), ("prod", "Tavari-Prod-TamperWatchDr"),
          ("prod", "Tavari-Prod-TamperWatchGlobal")]


def test_every_stack_has_a_snapshot(synthesized):
    assert {s for e in ("dev", "prod") for s in synthesized[e].templates} == {s for _, s in STACKS}


@pytest.mark.parametrize(("env_name", "stack"), STACKS, ids=[s for _, s in STACKS])
def test_template_snapshot(synthesized, snapshot_json, env_name, stack):
    assert mask_assets(synthesized[env_name].templates[stack]) == snapshot_json
