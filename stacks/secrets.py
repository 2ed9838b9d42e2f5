from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from backup_constructs.config_secrets import ConfigSecrets, SecretSpec
from backup_constructs.guardrails import custodians_of, protect_key
from backup_constructs.keys import customer_managed_key
from tavari_dr.core import outputs
from tavari_dr.core.config import SecretEntry, SecurityConfig


def secrets_replica_key_alias(env_name: str) -> str:
    return outputs.replica_key_alias(env_name, "secrets")


class SecretsStack(Stack):
    """Configuration backups: one secret per entry, outputs the CLI reads.

    guard: the security settings where removal_policy is retain: the secrets key refuses deletion,
        disabling and policy changes to all but the deploy and break-glass roles (default None).
    """

    def __init__(self, scope: Construct, construct_id: str, *, entries: tuple[SecretEntry, ...],
                 removal_policy: RemovalPolicy, replica_region: str | None = None,
                 replica_key_alias: str | None = None, guard: SecurityConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config_secrets = ConfigSecrets(
            self, "Config",
            entries=[SecretSpec(e.name, e.description) for e in entries],
            placeholder_template=outputs.PLACEHOLDER_TEMPLATE,
            replica_region=replica_region, replica_key_alias=replica_key_alias,
            removal_policy=removal_policy,
        )
        if guard is not None:
            protect_key(self.config_secrets.key, custodians_of(self, guard))
        for name, secret in self.config_secrets.secrets.items():
            CfnOutput(self, outputs.secret_output_key(name), value=secret.secret_arn,
                      description=f"Secret holding {name}")
        CfnOutput(self, outputs.SECRETS_KEY_ARN, value=self.config_secrets.key.key_arn)


class SecretsReplicaKeyStack(Stack):
    """The customer-managed key that secret replicas use in the DR region (guard: as for SecretsStack)."""

    def __init__(self, scope: Construct, construct_id: str, *, alias: str,
                 removal_policy: RemovalPolicy, guard: SecurityConfig | None = None, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.key = customer_managed_key(self, "Key", description="Tavari configuration secrets (DR replicas)",
                                        removal_policy=removal_policy)
        # Named so the primary region's secrets can point at it without a cross-region export.
        kms.Alias(self, "Alias", alias_name=alias, target_key=self.key)
        if guard is not None:
            protect_key(self.key, custodians_of(self, guard))
        CfnOutput(self, outputs.SECRETS_REPLICA_KEY_ARN, value=self.key.key_arn)
