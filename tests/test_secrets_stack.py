"""Secrets stack: KMS, replicas with their own CMK, retained, no value in any template."""

from __future__ import annotations

import copy
import json

from aws_cdk import App

from stacks.app import build_app
from tavari_dr.core import outputs
from tavari_dr.core.config import DEFAULT_SECRET_ENTRIES, load_environment
from tavari_dr.core.outputs import is_placeholder
from tests.conftest import cdk_context

SECRETS = outputs.SECRETS


def secrets_of(env) -> dict[str, dict]:
    resources = env.templates[env.stack(SECRETS)]["Resources"]
    return {k: v for k, v in resources.items() if v["Type"] == "AWS::SecretsManager::Secret"}


def test_one_secret_per_declared_entry_with_an_output_each(dev, prod):
    for env in (dev, prod):
        config = load_environment({**cdk_context(), "env": env.name})
        names = [e.name for e in config.secrets.all_entries]
        assert {e.name for e in DEFAULT_SECRET_ENTRIES} <= set(names)
        assert "STRIPE_SECRET_KEY" in names
        assert len(secrets_of(env)) == len(names)
        template_outputs = env.templates[env.stack(SECRETS)]["Outputs"]
        for name in names:
            assert outputs.secret_output_key(name) in template_outputs


def test_secret_logical_ids_are_pinned(prod):
    found = secrets_of(prod)
    for logical_id in ("ConfigSupabaseUrl757BF86A", "ConfigSupabaseAnonKey7A758FC9"):
        assert logical_id in found


def test_no_value_in_any_template_only_a_recognisable_placeholder(synthesized):
    for env in synthesized.values():
        for stack, template in env.templates.items():
            for resource in template["Resources"].values():
                assert "SecretString" not in resource.get("Properties", {}), stack
        for secret in secrets_of(env).values():
            generated = secret["Properties"]["GenerateSecretString"]
            sample = json.loads(generated["SecretStringTemplate"])
            sample[generated["GenerateStringKey"]] = "x" * generated["PasswordLength"]
            assert is_placeholder(json.dumps(sample))


def test_secrets_use_the_cmk_are_retained_and_deny_other_accounts(dev, prod):
    for env in (dev, prod):
        template = env.templates[env.stack(SECRETS)]["Resources"]
        key_id = next(k for k, v in template.items() if v["Type"] == "AWS::KMS::Key")
        assert template[key_id]["Properties"]["EnableKeyRotation"] is True
        for secret_id, secret in secrets_of(env).items():
            assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
            assert secret["DeletionPolicy"] == "Retain" and secret["UpdateReplacePolicy"] == "Retain"
            (policy,) = [r for r in template.values() if r["Type"] == "AWS::SecretsManager::ResourcePolicy"
                         and r["Properties"]["SecretId"] == {"Ref": secret_id}]
            (statement,) = policy["Properties"]["ResourcePolicy"]["Statement"]
            assert statement["Effect"] == "Deny" and statement["Principal"] == {"AWS": "*"}
            assert "aws:PrincipalAccount" in statement["Condition"]["StringNotEquals"]


def test_prod_replicates_each_secret_with_a_cmk_in_the_dr_region(dev, prod):
    for secret in secrets_of(prod).values():
        assert secret["Properties"]["ReplicaRegions"] == [{
            "Region": "eu-central-1",
            "KmsKeyId": "arn:aws:kms:eu-central-1:123456789012:alias/tavari-prod-secrets-replica",
        }]
    replica_key = prod.templates["Tavari-Prod-SecretsReplicaKey"]["Resources"]
    assert {v["Type"] for v in replica_key.values()} >= {"AWS::KMS::Key", "AWS::KMS::Alias"}
    alias = next(v for v in replica_key.values() if v["Type"] == "AWS::KMS::Alias")
    assert alias["Properties"]["AliasName"] == "alias/tavari-prod-secrets-replica"
    for secret in secrets_of(dev).values():
        assert "ReplicaRegions" not in secret["Properties"]


def test_secrets_replicate_in_the_primary_account_even_with_a_backup_account(synthesized):
    env = synthesized["prod-xacct"]
    (secret, *_) = secrets_of(env).values()
    assert secret["Properties"]["ReplicaRegions"][0]["KmsKeyId"].startswith("arn:aws:kms:eu-central-1:123456789012:")


def test_secret_properties_are_stable_across_synths_and_unrelated_config_changes(prod, tmp_path):
    """A redeploy must never regenerate (overwrite) a pushed value."""
    context = copy.deepcopy(cdk_context())
    prod_cfg = context["environments"]["prod"]
    prod_cfg["secrets"]["third_party_keys"].append("MAPBOX_TOKEN")
    prod_cfg["invoice_bucket"]["archive_after_days"] = 120
    prod_cfg["alert_emails"].append("second@tavari.example")
    app = App(context={**context, "env": "prod"}, outdir=str(tmp_path))
    build_app(app, load_environment({**context, "env": "prod"}))
    changed = app.synth().get_stack_by_name("Tavari-Prod-Secrets").template["Resources"]
    before = secrets_of(prod)
    for logical_id, secret in before.items():
        assert changed[logical_id]["Properties"] == secret["Properties"], logical_id
    assert len([r for r in changed.values() if r["Type"] == "AWS::SecretsManager::Secret"]) == len(before) + 1
