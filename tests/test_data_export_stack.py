"""The DataExport stack: HTTP API with a Lambda authorizer, exports bucket, limits table, alarms."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

from aws_cdk.assertions import Match

from tavari_dr.core import outputs

EXPORT = outputs.DATA_EXPORT


def resources(env, kind):
    return {k: v for k, v in env.templates[env.stack(EXPORT)]["Resources"].items() if v["Type"] == kind}


def one(env, kind, predicate=lambda r: True):
    (found,) = [r for r in resources(env, kind).values() if predicate(r)]
    return found


def function(env, description_start):
    return one(env, "AWS::Lambda::Function", lambda r: r["Properties"]["Description"].startswith(description_start))


def test_routes_are_get_only_and_every_one_goes_through_the_lambda_authorizer(dev, prod):
    for env in (dev, prod):
        routes = resources(env, "AWS::ApiGatewayV2::Route")
        assert sorted(r["Properties"]["RouteKey"] for r in routes.values()) == [
            "GET /api/account/export", "GET /api/account/export/{export_id}"]
        for route in routes.values():
            assert route["Properties"]["AuthorizationType"] == "CUSTOM"
            assert "AuthorizerId" in route["Properties"]
        authorizer = one(env, "AWS::ApiGatewayV2::Authorizer")["Properties"]
        assert authorizer["AuthorizerType"] == "REQUEST"
        assert authorizer["EnableSimpleResponses"] is True
        assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
        assert authorizer["AuthorizerResultTtlInSeconds"] == 0  # a cached allow would outlive the token
        assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"


def test_stage_throttles_and_access_logs_without_personal_data(prod):
    stage = one(prod, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 20, "ThrottlingRateLimit": 10}
    log_format = json.loads(stage["AccessLogSettings"]["Format"])
    assert log_format["user"] == "$context.authorizer.sub"
    assert not [v for v in log_format.values() if "sourceIp" in v or "userAgent" in v or "identity" in v]


def test_exports_bucket_is_encrypted_tls_only_and_expires_after_seven_days(dev, prod):
    for env in (dev, prod):
        template = env.template(EXPORT)
        template.has_resource_properties("AWS::S3::Bucket", {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [Match.object_like({
                "ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})]},
            "LifecycleConfiguration": {"Rules": Match.array_with([Match.object_like({
                "ExpirationInDays": 7, "Status": "Enabled"})])},
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
        })
        policies = resources(env, "AWS::S3::BucketPolicy").values()
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"])


def test_limits_table_is_encrypted_has_ttl_and_point_in_time_recovery(dev, prod):
    for env in (dev, prod):
        table = one(env, "AWS::DynamoDB::Table")
        props = table["Properties"]
        assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["SSESpecification"]["SSEType"] == "KMS" and "KMSMasterKeyId" in props["SSESpecification"]
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert table["DeletionPolicy"] == ("Retain" if env is prod else "Delete")


def test_functions_get_what_they_need_and_the_user_never_comes_from_config(prod):
    api = function(prod, "Export API: GET")["Properties"]
    worker = function(prod, "Export API: large")["Properties"]
    authorizer = function(prod, "Export API: verifies")["Properties"]
    assert api["Timeout"] == 29 and worker["Timeout"] == 900
    assert worker["EphemeralStorage"] == {"Size": 4096}
    assert "DeadLetterConfig" in worker and "DeadLetterConfig" not in api
    settings = api["Environment"]["Variables"]["TAVARI_EXPORT"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "<ref>" for p in settings)
    parsed = json.loads(text)
    assert parsed["exports_per_day"] == 3 and parsed["sync_row_limit"] == 20000
    assert parsed["url_expiry_seconds"] == 900 and parsed["retention_days"] == 7
    assert [d["name"] for d in parsed["datasets"]] == ["business", "call_history", "messages", "usage", "invoices",
                                                      "support_tickets"]
    assert parsed["worker"] == "<ref>"
    # its secrets' ARNs, and where its traces go (every function's ADOT collector layer: docs/decisions/0029)
    assert set(authorizer["Environment"]["Variables"]) == {"SUPABASE_URL_SECRET_ARN", "SUPABASE_JWT_SECRET_ARN",
                                                           "OTEL_EXPORTER_OTLP_ENDPOINT"}


def statements(env, role_prefix):
    policies = resources(env, "AWS::IAM::Policy")
    return [s for k, p in policies.items() if k.startswith(role_prefix)
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions_of(statements_):
    found = set()
    for s in statements_:
        found.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return found


def test_least_privilege(prod):
    authorizer = actions_of(statements(prod, "AuthorizerRole"))
    assert "secretsmanager:GetSecretValue" in authorizer
    assert not [a for a in authorizer if a.startswith(("s3:", "dynamodb:"))]
    api = actions_of(statements(prod, "ApiRole"))
    worker = actions_of(statements(prod, "WorkerRole"))
    assert "lambda:InvokeFunction" in api and "lambda:InvokeFunction" not in worker
    for actions in (api, worker):
        assert "dynamodb:PutItem" in actions and "s3:PutObject" in actions
        assert not [a for a in actions if a.startswith("s3:Delete") or a == "dynamodb:DeleteTable"]
        assert not [a for a in actions if a.endswith("*") and a.split(":")[1] == "*"]


def effective_statements(env, role_prefix):
    """Every statement a DataExport role holds: its inline policies and the managed policies it
    attaches, followed across stacks (Fn::GetStackOutput -> the producer's output -> its policy)."""
    found = list(statements(env, role_prefix))
    (role,) = [r for k, r in resources(env, "AWS::IAM::Role").items() if k.startswith(role_prefix)]
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        reference = arn["Fn::GetStackOutput"]
        producer = env.templates[reference["StackName"]]
        logical_id = producer["Outputs"][reference["OutputName"]]["Value"]["Ref"]
        found += producer["Resources"][logical_id]["Properties"]["PolicyDocument"]["Statement"]
    return found


def grants(statements_, action):
    """Whether any Allow statement's action (wildcards included) covers ``action``."""
    return any(fnmatchcase(action, granted) for s in statements_ if s["Effect"] == "Allow"
               for granted in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))


def test_the_export_roles_read_current_invoices_only(dev, prod):
    """The internet-facing export API and its worker read current invoice PDFs: no old versions, no
    listing, no replica, the invoice key only through S3 — not the verifiers' policy."""
    storage = prod.templates[prod.stack(outputs.INVOICE_STORAGE)]["Resources"]
    verifier = next(v for v in storage.values() if v["Type"] == "AWS::IAM::ManagedPolicy"
                    and v["Properties"]["Description"] == "Read access for the backup verification jobs")
    verifier_statements = verifier["Properties"]["PolicyDocument"]["Statement"]
    replica_resources = [json.dumps(s["Resource"]) for s in verifier_statements if "invoicerepl" in json.dumps(s)]
    assert replica_resources  # prod replicates: the verifiers read the replica, so the check below can fail
    assert grants(verifier_statements, "s3:GetObjectVersion")
    for env in (dev, prod):
        for role in ("ApiRole", "WorkerRole"):
            held = effective_statements(env, role)
            for action in ("s3:GetObjectVersion", "s3:ListBucketVersions", "s3:ListBucket", "s3:GetBucketVersioning",
                           "s3:DeleteObject", "s3:PutBucketPolicy"):
                assert not grants(held, action), (env.name, role, action)
            assert not [s for s in held if json.dumps(s["Resource"]) in replica_resources], (env.name, role)
            invoices = [s for s in held if "InvoicesBucket" in json.dumps(s["Resource"])]
            assert [s["Action"] for s in invoices] == ["s3:GetObject"], (env.name, role, invoices)
            (decrypt,) = [s for s in held if "InvoicesKey" in json.dumps(s["Resource"])]
            assert decrypt["Action"] == "kms:Decrypt"
            assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}
            s3_resources = [json.dumps(s["Resource"]) for s in held if str(s["Action"]).count("s3:")]
            assert all("InvoicesBucket" in r or "ExportsBucket" in r for r in s3_resources), s3_resources
            assert grants(held, "s3:GetObject") and grants(held, "s3:PutObject")


def test_the_verifiers_keep_their_policy_and_the_export_roles_do_not_attach_it(prod):
    storage = prod.templates[prod.stack(outputs.INVOICE_STORAGE)]["Resources"]
    (verifier_id,) = [k for k, v in storage.items() if v["Type"] == "AWS::IAM::ManagedPolicy"
                      and v["Properties"]["Description"] == "Read access for the backup verification jobs"]
    for role in ("ApiRole", "WorkerRole"):
        (held,) = [r for k, r in resources(prod, "AWS::IAM::Role").items() if k.startswith(role)]
        assert verifier_id not in json.dumps(held["Properties"].get("ManagedPolicyArns", []))
    backups = json.dumps(prod.templates[prod.stack(outputs.DATABASE_BACKUPS)])
    assert verifier_id in backups  # the verification jobs still attach it


def test_authorizer_errors_throttles_and_unreachable_keys_are_alarmed(prod):
    monitoring = prod.templates[prod.stack(outputs.MONITORING)]["Resources"]
    (authorizer_id,) = [k for k, r in resources(prod, "AWS::Lambda::Function").items()
                        if r["Properties"]["Description"] == "Export API: verifies Supabase access tokens"]
    alarms = [a["Properties"] for a in monitoring.values() if a["Type"] == "AWS::CloudWatch::Alarm"]
    on_authorizer = {a["MetricName"]: a for a in alarms
                     if a.get("Namespace") == "AWS/Lambda" and authorizer_id in json.dumps(a.get("Dimensions"))}
    assert set(on_authorizer) == {"Errors", "Throttles"}
    keys = [a for a in alarms if a.get("MetricName") == "ExportSigningKeysUnavailable"]
    for alarm in [*on_authorizer.values(), *keys]:
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300
        assert alarm["TreatMissingData"] == "notBreaching" and alarm["AlarmActions"]
        assert alarm["AlarmDescription"].endswith("/runbooks/alarms/#export-authorizer")
    assert len(keys) == 1


def test_export_alarms_exist_with_runbook_links(prod):
    alarms = [a["Properties"] for a in prod.templates[prod.stack(outputs.MONITORING)]["Resources"].values()
              if a["Type"] == "AWS::CloudWatch::Alarm"]
    failed = [a for a in alarms if a.get("MetricName") == "ExportFailed"]
    assert len(failed) == 1 and "#export-failed" in failed[0]["AlarmDescription"]
    assert len([a for a in alarms if "ExportDeadLetters" in json.dumps(a) or
                "An export job" in a.get("AlarmDescription", "")]) == 1


def test_outputs_are_the_cli_contract(prod):
    template = prod.templates[prod.stack(EXPORT)]
    assert {outputs.EXPORT_API_URL, outputs.EXPORTS_BUCKET_NAME, outputs.EXPORT_TABLE_NAME} <= set(template["Outputs"])


def test_cors_only_for_the_configured_front_end_origins(dev, prod):
    (api,) = resources(prod, "AWS::ApiGatewayV2::Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["https://app.tavari.example"] and cors["AllowMethods"] == ["GET"]
    assert cors["AllowHeaders"] == ["authorization"] and "location" in cors["ExposeHeaders"]
    (dev_api,) = resources(dev, "AWS::ApiGatewayV2::Api").values()
    assert "CorsConfiguration" not in dev_api["Properties"]


def test_a_failed_background_export_is_not_silently_run_again(prod):
    (config,) = resources(prod, "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert config["Properties"]["FunctionName"]["Ref"].startswith("WorkerFunction")
