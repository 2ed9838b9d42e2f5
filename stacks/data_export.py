from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import jsii
from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from backup_constructs.keys import customer_managed_key, log_group_key
from backup_constructs.nag import acknowledge, acknowledge_wildcards, grant_policy
from backup_constructs.python_function import PythonFunction, retention
from backup_constructs.secure_bucket import SecureBucket
from tavari_dr.core import outputs
from tavari_dr.core.config import DataExportConfig

# Distributions of requirements-lambda.txt each function carries, with their dependencies on Lambda.
POSTGRES_DRIVER = ("psycopg", "psycopg-binary", "typing-extensions")
TOKEN_VERIFICATION = ("PyJWT", "cryptography", "cffi", "pycparser")
API_TIMEOUT = Duration.seconds(29)  # API Gateway answers 503 after 30 s, whatever the function does
WORKER_TIMEOUT = Duration.minutes(15)
# Who, when, what — and no IP address or user agent: those are personal data the log does not need.
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId", "time": "$context.requestTime", "route": "$context.routeKey",
    "status": "$context.status", "user": "$context.authorizer.sub", "latencyMs": "$context.responseLatency",
    "authorizerError": "$context.authorizer.error", "integrationError": "$context.integrationErrorMessage"})


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogs:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> Any:
        from aws_cdk import aws_apigateway as apigw_v1

        return apigw_v1.AccessLogFormat.custom(ACCESS_LOG_FORMAT)


class DataExportStack(Stack):
    """GDPR/CCPA account export: ``GET /api/account/export`` on an HTTP API with a Lambda
    authorizer for Supabase tokens, an exports bucket whose objects expire, and a DynamoDB
    table of per-user limits and export jobs (see tavari_dr.export.api)."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: DataExportConfig,
                 supabase_url_secret_arn: str, jwt_secret_arn: str | None, database_url_secret_arn: str,
                 secrets_key: kms.IKey, invoice_bucket: s3.IBucket | None, invoice_access: iam.IManagedPolicy | None,
                 log_retention_days: int, removal_policy: RemovalPolicy, **kwargs: Any) -> None:
        """invoice_bucket: read for the PDFs in an export (with data_export.include_pdfs);
        invoice_access: the export's own read-only policy on it (InvoiceStorageStack.export_access,
        current versions only), never the verifiers' policy."""
        super().__init__(scope, construct_id, **kwargs)
        self.log_key = log_group_key(self, "LogKey", removal_policy=removal_policy)
        self.exports = SecureBucket(self, "Exports", purpose="Account exports (GDPR/CCPA)",
                                    expire_after=Duration.days(settings.retention_days), removal_policy=removal_policy)
        self.table_key = customer_managed_key(self, "LimitsKey", description="Tavari export limits and jobs",
                                              removal_policy=removal_policy)
        self.table = dynamodb.Table(
            self, "Limits", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST, time_to_live_attribute="expires_at",
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED, encryption_key=self.table_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=removal_policy)
        acknowledge(self.table, "Export limits and job states: they expire within days and are re-creatable, "
                                "so no backup plan.", "NIST.800.53.R5-DynamoDBInBackupPlan")

        common = dict(log_retention=retention(log_retention_days), log_key=self.log_key,
                      removal_policy=removal_policy)
        self.authorizer_function = PythonFunction(
            self, "Authorizer", name="export_authorizer", capabilities=("export",),
            description="Export API: verifies Supabase access tokens",
            timeout=Duration.seconds(10), memory_size=256, packages=TOKEN_VERIFICATION,
            environment={"SUPABASE_URL_SECRET_ARN": supabase_url_secret_arn,
                         **({"SUPABASE_JWT_SECRET_ARN": jwt_secret_arn} if jwt_secret_arn else {})},
            synchronous_reason="API Gateway calls the authorizer synchronously.", **common)
        for secret_id, arn in (("SupabaseUrl", supabase_url_secret_arn), ("JwtSecret", jwt_secret_arn)):
            if arn:
                sm.Secret.from_secret_complete_arn(self, f"{secret_id}Secret", arn).grant_read(
                    self.authorizer_function.role)
        secrets_key.grant_decrypt(self.authorizer_function.role)

        export_settings = {
            "table": self.table.table_name, "bucket": self.exports.bucket.bucket_name,
            "database_url_secret": database_url_secret_arn, "exports_per_day": settings.exports_per_day,
            "sync_row_limit": settings.sync_row_limit, "url_expiry_seconds": settings.url_expiry_seconds,
            "retention_days": settings.retention_days,
            "invoice_bucket": invoice_bucket.bucket_name if settings.include_pdfs and invoice_bucket else None,
            "datasets": [asdict(d) for d in settings.datasets]}
        self.worker = PythonFunction(
            self, "Worker", name="export_worker", capabilities=("export",),
            description="Export API: large account exports in the background",
            timeout=WORKER_TIMEOUT, memory_size=1024, ephemeral_storage_mib=4096, packages=POSTGRES_DRIVER,
            environment={"TAVARI_EXPORT": self.to_json_string(export_settings)}, **common)
        self.api_function = PythonFunction(
            self, "Api", name="export_api", capabilities=("export",),
            description="Export API: GET /api/account/export[/{export_id}]",
            timeout=API_TIMEOUT, memory_size=1024, packages=POSTGRES_DRIVER,
            environment={"TAVARI_EXPORT": self.to_json_string(
                {**export_settings, "worker": self.worker.function.function_arn})},
            synchronous_reason="API Gateway calls it synchronously; the worker it hands off to has a DLQ.", **common)
        self.worker.function.grant_invoke(self.api_function.role)
        # A failed export is recorded, alarmed and parked in the DLQ; the user starts a new one. A
        # silent retry would run the whole export again without the in-flight lock.
        self.worker.function.configure_async_invoke(retry_attempts=0)

        database_url = sm.Secret.from_secret_complete_arn(self, "DatabaseUrlSecret", database_url_secret_arn)
        for fn in (self.api_function, self.worker):
            self.table.grant_read_write_data(fn.role)
            database_url.grant_read(fn.role)
            secrets_key.grant_decrypt(fn.role)
            self.exports.bucket.grant_put(fn.role)
            # Presigned URLs are signed with this role: the current export object, never an old version
            # or a listing. kms:Decrypt also serves multipart uploads of large exports.
            fn.role.add_to_principal_policy(iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self.exports.bucket.arn_for_objects("*")]))
            self.exports.key.grant_decrypt(fn.role)
            acknowledge_wildcards(grant_policy(fn.role), "Exports are objects of the one exports bucket (keys are "
                                  "user and export IDs), through its key and the limits table's key; the API "
                                  "invokes the worker by ARN (any version).",
                                  actions=("s3:Abort*", "kms:GenerateDataKey*", "kms:ReEncrypt*", "dynamodb:*"))
            if settings.include_pdfs and invoice_access is not None:
                fn.role.add_managed_policy(invoice_access)

        # A browser front end on another origin needs CORS; preflights never reach the authorizer.
        cors = apigw.CorsPreflightOptions(
            allow_origins=list(settings.allowed_origins), allow_methods=[apigw.CorsHttpMethod.GET],
            allow_headers=["authorization"], expose_headers=["location", "retry-after"],
            max_age=Duration.hours(1)) if settings.allowed_origins else None
        self.api = apigw.HttpApi(self, "HttpApi", description="Tavari account export (GDPR/CCPA)",
                                 create_default_stage=False, cors_preflight=cors)
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=retention(log_retention_days),
                                         encryption_key=self.log_key, removal_policy=removal_policy)
        self.stage = apigw.HttpStage(
            self, "Stage", http_api=self.api, stage_name="$default", auto_deploy=True,
            access_log_settings=_AccessLogs(self.access_logs),
            # Whole-API ceiling; per-user limits are the DynamoDB conditional writes.
            throttle=apigw.ThrottleSettings(rate_limit=10, burst_limit=20))
        authorizer = authorizers.HttpLambdaAuthorizer(
            "SupabaseToken", self.authorizer_function.function,
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            identity_source=["$request.header.Authorization"],
            # No caching: a cached "allow" would outlive the token's own expiry.
            results_cache_ttl=Duration.seconds(0))
        integration = integrations.HttpLambdaIntegration("Export", self.api_function.function)
        for path in ("/api/account/export", "/api/account/export/{export_id}"):
            self.api.add_routes(path=path, methods=[apigw.HttpMethod.GET], integration=integration,
                                authorizer=authorizer)

        CfnOutput(self, outputs.EXPORT_API_URL, value=self.api.api_endpoint)
        CfnOutput(self, outputs.EXPORTS_BUCKET_NAME, value=self.exports.bucket.bucket_name)
        CfnOutput(self, outputs.EXPORT_TABLE_NAME, value=self.table.table_name)
