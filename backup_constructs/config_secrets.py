from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from backup_constructs.keys import alias_arn, customer_managed_key
from backup_constructs.nag import acknowledge
from tavari_dr.core.outputs import entry_id


@dataclass(frozen=True)
class SecretSpec:
    """name: the env-file key; description: what the value is."""

    name: str
    description: str


class ConfigSecrets(Construct):
    """One Secrets Manager secret per configuration entry, none holding a usable value.

    entries: what to create.
    placeholder_template: JSON the generated value is wrapped in, so tools can tell
        "never set" from a real value (required).
    replica_region / replica_key_alias: also keep each secret in this region, encrypted
        with the key behind this alias there (default None: no replica).
    removal_policy: RETAIN by default: a deleted secret is configuration lost.

    A value pushed later survives redeploys: CloudFormation regenerates a value only when
    the secret's GenerateSecretString changes, and it never depends on other entries.
    """

    def __init__(self, scope: Construct, construct_id: str, *, entries: Sequence[SecretSpec],
                 placeholder_template: str, replica_region: str | None = None,
                 replica_key_alias: str | None = None,
                 removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> None:
        super().__init__(scope, construct_id)
        if (replica_region is None) != (replica_key_alias is None):
            raise ValueError("replica_region and replica_key_alias go together")
        self.key = customer_managed_key(self, "Key", description="Tavari configuration secrets",
                                        removal_policy=removal_policy)
        replica_regions = None
        if replica_region is not None:
            # The replica region's key, by alias: a customer-managed key there, never the
            # AWS-managed fallback a replica without KmsKeyId gets.
            replica_key = kms.Key.from_key_arn(
                self, "ReplicaKey", alias_arn(replica_region, Stack.of(self).account, replica_key_alias))
            replica_regions = [sm.ReplicaRegion(region=replica_region, encryption_key=replica_key)]
        self.secrets: dict[str, sm.Secret] = {}
        account = Stack.of(self).account
        for entry in entries:
            secret = sm.Secret(
                # Keyed by name, never by position, so adding an entry moves no other secret.
                self, entry_id(entry.name),
                description=f"{entry.name}: {entry.description}",
                encryption_key=self.key,
                generate_secret_string=sm.SecretStringGenerator(
                    secret_string_template=placeholder_template,
                    generate_string_key="nonce",
                    exclude_punctuation=True,
                    password_length=16,
                ),
                replica_regions=replica_regions,
                removal_policy=removal_policy,
            )
            secret.add_to_resource_policy(iam.PolicyStatement(
                sid="DenyOutsideAccount",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["secretsmanager:*"],
                resources=["*"],
                conditions={"StringNotEquals": {"aws:PrincipalAccount": account}},
            ))
            acknowledge(
                secret,
                "Values are issued by Supabase and third parties and rotated at the provider; the new "
                "value is pushed with `tavari-dr secrets push` (README: secrets workflow). A rotation "
                "Lambda cannot mint them.",
                "AwsSolutions-SMG4", "NIST.800.53.R5-SecretsManagerRotationEnabled",
            )
            self.secrets[entry.name] = secret
