"""Stack purposes and output keys: the contract between the stacks and the CLI.

The stacks name their CfnOutputs with these keys; `tavari-dr` finds deployed resources
by reading them back from CloudFormation, so neither side hard-codes a physical name. The
Secrets stack's placeholder value is part of the same contract: every reader of a secret tells
"never set" from a real value by it.
"""

import json

INVOICE_STORAGE = "InvoiceStorage"
INVOICE_REPLICA = "InvoiceReplica"

INVOICE_BUCKET_NAME = "InvoiceBucketName"
INVOICE_BUCKET_ARN = "InvoiceBucketArn"
INVOICE_KEY_ARN = "InvoiceKeyArn"
INVOICE_ACCESS_LOG_BUCKET_NAME = "InvoiceAccessLogBucketName"
REPLICATION_ROLE_ARN = "ReplicationRoleArn"
REPLICA_BUCKET_NAME = "ReplicaBucketName"
REPLICA_BUCKET_ARN = "ReplicaBucketArn"
REPLICA_KEY_ARN = "ReplicaKeyArn"

RESTORE_OPS_BUCKET_NAME = "RestoreOpsBucketName"
BATCH_OPERATIONS_ROLE_ARN = "BatchOperationsRoleArn"
DELETE_MARKER_FUNCTION_ARN = "DeleteMarkerFunctionArn"
# Planning without listing (docs/formats/inventory-and-feed.md, ADR 0022): where S3 Inventory and the change
# feed land in the restore-ops bucket, the Athena workgroup and Glue database over them.
INVENTORY_WORKGROUP = "InventoryWorkgroup"
INVENTORY_DATABASE = "InventoryDatabase"
INVENTORY_PREFIX = "InventoryPrefix"
FEED_PREFIX = "FeedPrefix"
INVENTORY_DESTINATION_PREFIX = "inventory"  # S3 adds /<source bucket>/<configuration id>/
INVENTORY_CONFIGURATION_ID = "all-versions"
FEED_KEY_PREFIX = "feed/"
FEED_ERRORS_KEY_PREFIX = "feed-errors/"
ATHENA_RESULTS_KEY_PREFIX = "athena-results/"
RESTORE_JOBS_KEY_PREFIX = "restore-jobs/"
# The canary's objects in the invoice bucket: planners, restores and verifications ignore every key under it.
CANARY_KEY_PREFIX = "_canary/"

DATABASE_BACKUPS = "DatabaseBackups"
BACKUP_BUCKET_NAME = "BackupBucketName"
BACKUP_KEY_ARN = "BackupKeyArn"
MANIFEST_SIGNING_KEY_ARN = "ManifestSigningKeyArn"
CHANGE_SIGNING_KEY_ARN = "ChangeSigningKeyArn"  # the capture's: change records only (tavari_dr.database.signing)
REPORTS_BUCKET_NAME = "ReportsBucketName"
REPORTS_KEY_ARN = "ReportsKeyArn"
RESTORE_TEST_BUCKET_NAME = "RestoreTestBucketName"
BACKUP_CLUSTER_ARN = "BackupClusterArn"
BACKUP_TASK_DEFINITION_ARN = "BackupTaskDefinitionArn"
DRILL_STATE_MACHINE_ARN = "DrillStateMachineArn"
CHANGE_CAPTURE_SERVICE_NAME = "ChangeCaptureServiceName"  # the `db stream` ECS service
# The nightly task's reason, as a variable `db backup --reason` reads: a base reset's run of that task
# overrides it (tavari_dr.database.dump_task), so its dump says "base-reset ...".
BACKUP_REASON_ENV = "TAVARI_BACKUP_REASON"

MONITORING = "Monitoring"
ALERT_TOPIC_ARN = "AlertTopicArn"
ALERT_ROUTER_NAME = "AlertRouterName"
DASHBOARD_NAME = "DashboardName"

DATA_EXPORT = "DataExport"
EXPORT_API_URL = "ExportApiUrl"
EXPORTS_BUCKET_NAME = "ExportsBucketName"
EXPORT_TABLE_NAME = "ExportTableName"

SECRETS = "Secrets"
SECRETS_REPLICA_KEY = "SecretsReplicaKey"
SECRETS_KEY_ARN = "SecretsKeyArn"
SECRETS_REPLICA_KEY_ARN = "SecretsReplicaKeyArn"

TAMPER_WATCH = "TamperWatch"

# GitHub Actions' roles (read by people: they set them as the workflow's variables).
DEPLOY_ROLES = "DeployRoles"
DEPLOY_ROLE_ARN = "DeployRoleArn"
DIFF_ROLE_ARN = "DiffRoleArn"
TRAIL_ARN = "TrailArn"
TAMPER_WATCH_EXPECTATION = "TamperWatchExpectation"


def inventory_key_prefix(source_bucket: str) -> str:
    """Where S3 writes the invoice bucket's inventory reports (manifests, data/, hive/) in the restore-ops bucket."""
    return f"{INVENTORY_DESTINATION_PREFIX}/{source_bucket}/{INVENTORY_CONFIGURATION_ID}/"


def tamper_rule_prefix(env_name: str) -> str:
    """Every tamper rule's name starts so, in every region: the rule that alarms on DeleteRule or
    RemoveTargets matches its siblings (and itself) by it, and the daily monitor finds them by it."""
    return f"tavari-{env_name}-tamper-"


def tamper_trail_name(env_name: str) -> str:
    """The trail the tamper watch creates when config names none (security.trail_arn)."""
    return f"tavari-{env_name}-tamper-trail"


def entry_id(entry_name: str) -> str:
    """SUPABASE_URL -> SupabaseUrl: names an entry's secret (logical ID) and its output alike."""
    return "".join(part.capitalize() for part in entry_name.split("_") if part)


def secret_output_key(entry_name: str) -> str:
    """SUPABASE_URL -> SecretSupabaseUrlArn (the ARN output of that entry's secret)."""
    return f"Secret{entry_id(entry_name)}Arn"


# The stack creates each secret with a generated JSON value carrying this key, so no usable
# value is ever in a template and `secrets check` can tell "never set" from "set".
UNSET_MARKER = "tavari:unset"
PLACEHOLDER_TEMPLATE = json.dumps({UNSET_MARKER: "set with: tavari-dr secrets push --apply"})


def is_placeholder(value: str | None) -> bool:
    if value is None or not value.startswith("{"):
        return False
    try:
        parsed = json.loads(value)
    except ValueError:
        return False
    return isinstance(parsed, dict) and UNSET_MARKER in parsed


def replica_key_alias(env_name: str, purpose: str) -> str:
    """The alias of a DR-region key (purpose: backups, invoice or secrets): the stacks name the key by
    it, and the drift check reads the key's policy through it."""
    return f"alias/tavari-{env_name}-{purpose}-replica"


DR_KEY_PURPOSES = {"backup replica": "backups", "invoice replica": "invoice", "secrets replica": "secrets"}


def dr_key_aliases(env_name: str) -> dict[str, str]:
    """The DR region's protected keys: drift-check name -> alias."""
    return {name: replica_key_alias(env_name, purpose) for name, purpose in DR_KEY_PURPOSES.items()}
