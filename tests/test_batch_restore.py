"""Batch Operations: job requests checked with botocore's Stubber (moto has no create_job),
manifests on moto, and the delete-marker Lambda's task handling."""

from __future__ import annotations

import csv
import io
import json

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner
from moto import mock_aws

from tavari_dr.bucket import batch as b
from tavari_dr.bucket.restore import COPY, DELETE_MARKER, RESTORE_ARCHIVED, Action, NotVersioned, Plan
from tavari_dr.cli import main

pytestmark = pytest.mark.moto  # AWS emulated in-process: its own budget (benches/synth.sh)

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def plan_with(*actions):
    return Plan(bucket="invoices", to="2026-11-20T14:00:00+00:00", created="2026-11-25T12:00:00+00:00",
                actions=list(actions))


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        for name in ("invoices", "manifests"):
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        client.put_bucket_encryption(Bucket="invoices", ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:aws:kms:k"}}]})
        yield client


def test_manifest_is_bucket_urlencoded_key_version_without_header():
    text = b.manifest_csv("invoices", [Action("inv/2026 11/ü#1.pdf", COPY, "v1"), Action("a.pdf", COPY, "null")],
                          with_version=True).decode()
    assert text == "invoices,inv/2026%2011/%C3%BC%231.pdf,v1\ninvoices,a.pdf,null\n"


def test_jobs_are_created_with_etag_pinned_manifests_reports_and_confirmation(s3):
    big = 6 * 1024**3
    plan = plan_with(Action("a.pdf", COPY, "v1", 10), Action("b.pdf", COPY, "v2", big),
                     Action("c.pdf", DELETE_MARKER, current="v3"),
                     Action("d.pdf", RESTORE_ARCHIVED, "v4", 5, "GLACIER"))
    control = boto3.client("s3control", region_name=REGION)
    stub = Stubber(control)
    expected_common = {"AccountId": ACCOUNT, "ConfirmationRequired": True, "Priority": 10,
                       "RoleArn": "arn:aws:iam::123456789012:role/batch", "ClientRequestToken": ANY,
                       "Report": {"Bucket": "arn:aws:s3:::manifests", "Prefix": ANY, "Format": "Report_CSV_20180820",
                                  "Enabled": True, "ReportScope": "AllTasks"},
                       "Description": ANY}
    stub.add_response("create_job", {"JobId": "copy-job"}, {
        **expected_common,
        "Operation": {"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::invoices", "MetadataDirective": "COPY",
                                          "SSEAwsKmsKeyId": "arn:aws:kms:k"}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]},
                     "Location": {"ObjectArn": ANY, "ETag": ANY}},
    })
    stub.add_response("create_job", {"JobId": "marker-job"}, {
        **expected_common,
        "Operation": {"LambdaInvoke": {"FunctionArn": "arn:aws:lambda:fn", "InvocationSchemaVersion": "2.0",
                                       "UserArguments": {"bucket": "invoices", "restore_id": plan.fingerprint()}}},
        # The version column is each key's current version when planned: the Lambda checks it.
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]},
                     "Location": {"ObjectArn": ANY, "ETag": ANY}},
    })
    with stub:
        jobs = b.create_jobs(s3, control, plan, account_id=ACCOUNT, role_arn="arn:aws:iam::123456789012:role/batch",
                             delete_marker_function_arn="arn:aws:lambda:fn", manifest_bucket="manifests")
    stub.assert_no_pending_responses()
    assert (jobs.copy_job_id, jobs.delete_marker_job_id) == ("copy-job", "marker-job")
    assert [a.key for a in jobs.cli_path] == ["b.pdf", "d.pdf"]  # > 5 GB, archived
    copies_key = jobs.manifests[0].removeprefix("s3://manifests/")
    rows = list(csv.reader(io.StringIO(s3.get_object(Bucket="manifests", Key=copies_key)["Body"].read().decode())))
    assert rows == [["invoices", "a.pdf", "v1"]]
    # The ETag in the request is the manifest object's: the job reads exactly that version.
    head = s3.head_object(Bucket="manifests", Key=copies_key)
    assert head["ETag"].strip('"')


def test_confirm_starts_jobs_without_the_confirmation_step(s3):
    control = boto3.client("s3control", region_name=REGION)
    stub = Stubber(control)
    stub.add_response("create_job", {"JobId": "job-00001"}, {
        "AccountId": ACCOUNT, "ConfirmationRequired": False, "Operation": ANY, "Manifest": ANY, "Report": ANY,
        "Priority": 10, "RoleArn": ANY, "ClientRequestToken": ANY, "Description": ANY})
    with stub:
        jobs = b.create_jobs(s3, control, plan_with(Action("x.pdf", DELETE_MARKER)), account_id=ACCOUNT,
                             role_arn="r", delete_marker_function_arn="f", manifest_bucket="manifests", confirm=True)
    assert not jobs.confirmation_required and jobs.copy_job_id is None


def task_event(bucket, *keys, job_bucket="invoices"):
    return {"invocationSchemaVersion": "2.0", "invocationId": "inv-1",
            "job": {"id": "job-1", "userArguments": {"bucket": job_bucket}},
            "tasks": [{"taskId": f"t{i}", "s3Bucket": bucket, "s3Key": k, "s3VersionId": None}
                      for i, k in enumerate(keys)]}


def test_delete_marker_lambda_adds_markers_and_keeps_every_version(s3):
    s3.put_object(Bucket="invoices", Key="late file.pdf", Body=b"x")
    response = b.delete_marker_tasks(task_event("invoices", "late%20file.pdf"), s3)
    assert response["invocationSchemaVersion"] == "2.0" and response["invocationId"] == "inv-1"
    assert [r["resultCode"] for r in response["results"]] == ["Succeeded"]
    versions = s3.list_object_versions(Bucket="invoices")
    assert len(versions["Versions"]) == 1 and len(versions["DeleteMarkers"]) == 1


def test_delete_marker_lambda_refuses_unversioned_buckets_and_foreign_tasks(s3):
    s3.create_bucket(Bucket="plain", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="plain", Key="keep.pdf", Body=b"x")
    response = b.delete_marker_tasks(task_event("plain", "keep.pdf", job_bucket="plain"), s3)
    assert response["results"][0]["resultCode"] == "PermanentFailure"
    assert "not versioned" in response["results"][0]["resultString"]
    assert s3.get_object(Bucket="plain", Key="keep.pdf")["Body"].read() == b"x"
    response = b.delete_marker_tasks(task_event("manifests", "a.pdf"), s3)
    assert response["results"][0]["resultCode"] == "PermanentFailure"


def test_cli_batch_operations_path(s3, monkeypatch):
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    from freezegun import freeze_time

    with freeze_time("2026-11-01T10:00:00Z"):
        s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"1")
    with freeze_time("2026-11-02T10:00:00Z"):
        s3.put_object(Bucket="invoices", Key="a.pdf", Body=b"2")
    outputs = {"InvoiceBucketName": "invoices", "RestoreOpsBucketName": "manifests",
               "BatchOperationsRoleArn": "arn:aws:iam::123456789012:role/batch",
               "DeleteMarkerFunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:dm"}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="Tavari-Dev-InvoiceStorage", TemplateBody=json.dumps({
            "Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {k: {"Value": v} for k, v in outputs.items()}}))
    created = []

    def fake_create_jobs(s3_client, control, plan, **kwargs):
        created.append((plan, kwargs))
        return b.BatchJobs(copy_job_id="job-123", manifests=["s3://manifests/x.csv"])

    monkeypatch.setattr(b, "create_jobs", fake_create_jobs)
    s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": REGION})
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="Tavari-Dev-DatabaseBackups", TemplateBody=json.dumps({
            "Resources": {"Anchor": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"ReportsBucketName": {"Value": "reports"}, "BackupBucketName": {"Value": "reports"}}}))
    result = CliRunner().invoke(main, ["bucket", "restore", "--env", "dev", "--to", "2026-11-01T12:00:00Z",
                                       "--apply", "--batch-operations"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "copy job: job-123" in result.output and "await confirmation" in result.output
    (listed,) = s3.list_objects_v2(Bucket="reports", Prefix="audit/bucket_batch_restore/")["Contents"]
    record = json.loads(s3.get_object(Bucket="reports", Key=listed["Key"])["Body"].read())
    assert record["outcome"] == "batch jobs created (awaiting confirmation)"
    assert record["details"]["jobs"]["copy_job_id"] == "job-123" and record["caller"].startswith("arn:aws:")
    plan, kwargs = created[0]
    assert [a.key for a in plan.actions] == ["a.pdf"]
    assert kwargs["role_arn"].endswith(":role/batch") and kwargs["manifest_bucket"] == "manifests"
    assert kwargs["confirm"] is False and kwargs["account_id"] == ACCOUNT
    result = CliRunner().invoke(main, ["bucket", "restore", "--bucket", "invoices", "--backup-bucket", "reports",
                                       "--region", REGION, "--to", "2026-11-01T12:00:00Z", "--apply",
                                       "--batch-operations"])
    assert result.exit_code == 2 and "needs --env" in result.output


@pytest.mark.parametrize("suspended", ["invoices", "elsewhere"])
def test_jobs_are_refused_unless_both_buckets_are_versioned(s3, suspended):
    s3.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket="elsewhere", VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_versioning(Bucket=suspended, VersioningConfiguration={"Status": "Suspended"})
    plan = plan_with(Action("a.pdf", COPY, "v1", 10), Action("c.pdf", DELETE_MARKER, current="v3"))
    plan.target_bucket = "elsewhere"
    control = boto3.client("s3control", region_name=REGION)
    with Stubber(control), pytest.raises(NotVersioned, match=f"bucket {suspended} has versioning Suspended"):
        b.create_jobs(s3, control, plan, account_id=ACCOUNT, role_arn="r", delete_marker_function_arn="f",
                      manifest_bucket="manifests")
    assert s3.list_objects_v2(Bucket="manifests").get("KeyCount", 0) == 0  # nothing written


def test_delete_marker_lambda_leaves_a_key_changed_since_the_plan(s3):
    planned = s3.put_object(Bucket="invoices", Key="late.pdf", Body=b"x")["VersionId"]
    s3.put_object(Bucket="invoices", Key="late.pdf", Body=b"the application wrote it again")
    event = task_event("invoices", "late.pdf")
    event["tasks"][0]["s3VersionId"] = planned
    before = {v["VersionId"] for v in s3.list_object_versions(Bucket="invoices")["Versions"]}
    (result,) = b.delete_marker_tasks(event, s3)["results"]
    assert result["resultCode"] == "PermanentFailure" and "changed during restore" in result["resultString"]
    listed = s3.list_object_versions(Bucket="invoices")
    assert {v["VersionId"] for v in listed["Versions"]} == before and not listed.get("DeleteMarkers")
    # As planned: the marker goes on, and every version stays.
    event["tasks"][0]["s3VersionId"] = s3.head_object(Bucket="invoices", Key="late.pdf")["VersionId"]
    (result,) = b.delete_marker_tasks(event, s3)["results"]
    assert result["resultCode"] == "Succeeded"
    listed = s3.list_object_versions(Bucket="invoices")
    assert {v["VersionId"] for v in listed["Versions"]} == before and len(listed["DeleteMarkers"]) == 1
