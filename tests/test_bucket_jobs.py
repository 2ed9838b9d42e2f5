"""`tavari-dr bucket jobs`: the restore's Batch Operations jobs followed to the end.

moto has no S3 Control jobs: ListJobs, DescribeJob, UpdateJobStatus and CreateJob go through botocore's
Stubber, which checks every request and every canned response against the service model (the shapes
the API documents). The manifests, completion reports and audit records are real objects on moto;
the reports are written as S3 writes them (User Guide, "Examples: S3 Batch Operations completion
reports"): <prefix>/job-<id>/manifest.json naming results/<sha>.csv files with their MD5, rows
Bucket, Key, VersionId, TaskStatus, HTTP status, error code, ResultMessage, CSV-quoted."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber
from click.testing import CliRunner
from moto import mock_aws

from tavari_dr.bucket import jobs as j
from tavari_dr.cli import main
from tavari_dr.core.aws import AwsTarget

pytestmark = pytest.mark.moto

REGION, ACCOUNT = "eu-west-1", "123456789012"
RESTORE = "f" * 16
CREATED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        for name in ("manifests", "reports"):
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def control():
    client = boto3.client("s3control", region_name=REGION)
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def listed(job_id, description, status="Active", total=10, ok=4, failed=1):
    return {"JobId": job_id, "Description": description, "Operation": "S3PutObjectCopy", "Priority": 10,
            "Status": status, "CreationTime": CREATED,
            "ProgressSummary": {"TotalNumberOfTasks": total, "NumberOfTasksSucceeded": ok,
                                "NumberOfTasksFailed": failed}}


def job(job_id="job-copy-1", status="Complete", *, description="tavari-dr: copy 5 versions back to T in invoices",
        total=5, ok=3, failed=2, operation=None):
    return {"JobId": job_id, "Description": description, "Status": status, "ConfirmationRequired": True,
            "Priority": 10, "RoleArn": "arn:aws:iam::123456789012:role/batch", "CreationTime": CREATED,
            "Operation": operation or {"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::invoices",
                                                           "MetadataDirective": "COPY"}},
            "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key", "VersionId"]},
                         "Location": {"ObjectArn": f"arn:aws:s3:::manifests/restore-jobs/{RESTORE}/copies.csv",
                                      "ETag": "0123456789abcdef"}},
            "Report": {"Bucket": "arn:aws:s3:::manifests", "Format": "Report_CSV_20180820", "Enabled": True,
                       "Prefix": f"restore-jobs/{RESTORE}/reports", "ReportScope": "AllTasks"},
            "ProgressSummary": {"TotalNumberOfTasks": total, "NumberOfTasksSucceeded": ok,
                                "NumberOfTasksFailed": failed}}


def expect_describe(stub, described):
    stub.add_response("describe_job", {"Job": described}, {"AccountId": ACCOUNT, "JobId": described["JobId"]})


# Rows as S3 writes them: URL-encoded keys, the HTTP status before the error code, messages quoted.
SUCCEEDED = [["invoices", "inv/2026%2011/%C3%BC%231.pdf", "v1", "succeeded", "200", "", "Successful"],
             ["invoices", "a.pdf", "v2", "succeeded", "200", "", "Successful"],
             ["invoices", "b.pdf", "v3", "succeeded", "200", "", "Successful"]]
FAILED = [["invoices", "c%2Cd.pdf", "v4", "failed", "403", "AccessDenied", 'Access Denied, "kms:Decrypt"'],
          ["invoices", "e.pdf", "v5", "failed", "500", "InternalError", "We encountered an internal error."],
          ["invoices", "late.pdf", "v6", "failed", "200", "PermanentFailure",
           "changed during restore: current version v9, the plan saw v6; plan again"]]


def write_report(s3, job_id, files, *, prefix=f"restore-jobs/{RESTORE}/reports", corrupt=False):
    results = []
    for status, rows in files:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        body = out.getvalue().encode()
        key = f"{prefix}/job-{job_id}/results/{hashlib.sha1(body).hexdigest()}.csv"  # noqa: S324 - S3's naming
        s3.put_object(Bucket="manifests", Key=key, Body=body + (b"x" if corrupt else b""))
        results.append({"TaskExecutionStatus": status, "Bucket": "manifests",
                        "MD5Checksum": hashlib.md5(body).hexdigest(), "Key": key})  # noqa: S324
    s3.put_object(Bucket="manifests", Key=f"{prefix}/job-{job_id}/manifest.json", Body=json.dumps({
        "Format": "Report_CSV_20180820", "ReportCreationDate": "2026-11-30T13:00:00.000Z", "Results": results,
        "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"}))


# --------------------------------------------------------------------------- list, show, confirm, cancel


def test_list_pages_through_and_keeps_only_this_tools_jobs(control):
    client, stub = control
    stub.add_response("list_jobs", {"Jobs": [listed("job-a", "tavari-dr: copy 10 versions back"),
                                             listed("job-x", "someone else's job")], "NextToken": "page2"},
                      {"AccountId": ACCOUNT, "MaxResults": 1000})
    stub.add_response("list_jobs", {"Jobs": [listed("job-b", "tavari-dr: 3 delete markers", "Complete", 3, 3, 0)]},
                      {"AccountId": ACCOUNT, "MaxResults": 1000, "NextToken": "page2"})
    found = j.list_jobs(client, ACCOUNT)
    assert [x.job_id for x in found] == ["job-a", "job-b"]
    assert (found[0].total, found[0].succeeded, found[0].failed) == (10, 4, 1)
    assert found[0].created == CREATED.isoformat()


def test_active_jobs_asks_for_the_statuses_in_flight_and_answers_plain_dicts(control):
    client, stub = control
    stub.add_response("list_jobs", {"Jobs": [listed("job-a", "tavari-dr: copy 10 versions back", "Suspended")]},
                      {"AccountId": ACCOUNT, "MaxResults": 1000, "JobStatuses": list(j.ACTIVE)})
    (active,) = j.active_jobs(client, ACCOUNT)
    assert active == {"job_id": "job-a", "description": "tavari-dr: copy 10 versions back", "status": "Suspended",
                      "operation": "S3PutObjectCopy", "created": CREATED.isoformat(), "terminated": None,
                      "total": 10, "succeeded": 4, "failed": 1}
    assert "Complete" not in j.ACTIVE and set(j.ACTIVE) | set(j.TERMINAL) == set(
        client.meta.service_model.operation_model("ListJobs").input_shape.members["JobStatuses"].member.enum)


def test_confirm_starts_a_suspended_job_only_when_its_task_count_is_the_plans(control):
    client, stub = control
    stub.add_response("update_job_status", {"JobId": "job-copy-1", "Status": "Ready"},
                      {"AccountId": ACCOUNT, "JobId": "job-copy-1", "RequestedJobStatus": "Ready",
                       "StatusUpdateReason": ANY})
    assert j.confirm(client, ACCOUNT, job(status="Suspended", total=5)) == "Ready"
    with pytest.raises(j.JobError, match="read 4 tasks from its manifest, the plan had 5"):
        j.confirm(client, ACCOUNT, job(status="Suspended", total=4))
    with pytest.raises(j.JobError, match="is Active, not Suspended"):
        j.confirm(client, ACCOUNT, job(status="Active"))


def test_cancel_only_what_has_not_finished(control):
    client, stub = control
    stub.add_response("update_job_status", {"JobId": "job-copy-1", "Status": "Cancelling"},
                      {"AccountId": ACCOUNT, "JobId": "job-copy-1", "RequestedJobStatus": "Cancelled",
                       "StatusUpdateReason": ANY})
    assert j.cancel(client, ACCOUNT, job(status="Active")) == "Cancelling"
    with pytest.raises(j.JobError, match="is Complete"):
        j.cancel(client, ACCOUNT, job(status="Complete"))


def test_someone_elses_job_is_shown_but_never_acted_on(control):
    client, stub = control
    foreign = job(description="nightly tagging job")
    expect_describe(stub, foreign)
    expect_describe(stub, foreign)
    assert j.describe(client, ACCOUNT, "job-copy-1", ours=False)["Description"] == "nightly tagging job"
    with pytest.raises(j.JobError, match="not created by tavari-dr"):
        j.describe(client, ACCOUNT, "job-copy-1")
    with pytest.raises(j.JobError, match="is not a Batch Operations job ID"):
        j.describe(client, ACCOUNT, "../x")


# --------------------------------------------------------------------------- report and retry


def test_the_completion_report_is_summarised_per_error_code(s3):
    write_report(s3, "job-copy-1", [("succeeded", SUCCEEDED), ("failed", FAILED)])
    report = j.read_report(s3, job(), first=2)
    assert (report.succeeded, report.failed) == (3, 3)
    assert dict(report.by_error) == {"AccessDenied": 1, "InternalError": 1, "PermanentFailure": 1}
    first = report.first_failures[0]
    assert (first.key, first.version_id, first.error_code, first.http_status) == ("c,d.pdf", "v4", "AccessDenied",
                                                                                   "403")
    assert first.message == 'Access Denied, "kms:Decrypt"'  # the quoted field, commas and quotes intact
    assert len(report.first_failures) == 2 and len(report.failed_tasks) == 3
    assert report.as_dict()["failed_by_error"]["AccessDenied"] == 1


def test_a_report_in_the_schema_lines_column_order_reads_the_same():
    """The User Guide's ReportSchema line names ErrorCode before HTTPStatusCode; its example rows (and
    S3) write the status first. Either way the numeric field is the status."""
    rows = list(j.report_rows('invoices,k,v,failed,AccessDenied,403,"no"\ninvoices,k,v,failed,403,AccessDenied,no\n'))
    assert [(r.error_code, r.http_status) for r in rows] == [("AccessDenied", "403")] * 2


def test_a_report_not_written_yet_or_altered_is_refused(s3):
    with pytest.raises(j.JobError, match="no completion report at s3://manifests/restore-jobs/.*/job-job-copy-1/"):
        j.read_report(s3, job(status="Active"))
    write_report(s3, "job-copy-1", [("failed", FAILED)], corrupt=True)
    with pytest.raises(j.JobError, match="MD5 differs"):
        j.read_report(s3, job())


def test_retry_builds_a_new_job_from_the_failed_tasks_only(s3, control):
    client, stub = control
    write_report(s3, "job-copy-1", [("succeeded", SUCCEEDED), ("failed", FAILED)])
    original = job()
    report = j.read_report(s3, original)
    key = f"restore-jobs/{RESTORE}/retry-of-job-copy-1.csv"
    expected = {"AccountId": ACCOUNT, "ConfirmationRequired": True, "Operation": original["Operation"],
                "Report": original["Report"], "Priority": 10, "RoleArn": original["RoleArn"],
                "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820",
                                      "Fields": ["Bucket", "Key", "VersionId"]},
                             "Location": {"ObjectArn": f"arn:aws:s3:::manifests/{key}", "ETag": ANY}},
                "ClientRequestToken": ANY, "Description": ANY}
    stub.add_response("create_job", {"JobId": "job-retry-1"}, expected)
    stub.add_response("create_job", {"JobId": "job-retry-1"}, expected)
    made = j.retry(s3, client, ACCOUNT, original, report)
    assert (made.job_id, made.tasks, made.left_for_a_new_plan, made.confirmation_required) == (
        "job-retry-1", 2, 1, True)
    assert s3.get_object(Bucket="manifests", Key=key)["Body"].read() == b"invoices,c%2Cd.pdf,v4\ninvoices,e.pdf,v5\n"
    again = j.retry(s3, client, ACCOUNT, original, report)  # a re-run: same manifest, same token, same job
    assert again.job_id == "job-retry-1"
    assert len(s3.list_object_versions(Bucket="manifests", Prefix=key)["Versions"]) == 1  # written once


def test_retry_pins_the_manifest_etag_and_derives_its_token_from_the_tasks(s3):
    write_report(s3, "job-copy-1", [("failed", FAILED)])
    original = job()
    report = j.read_report(s3, original)
    requests = []

    class Control:
        def create_job(self, **request):
            requests.append(request)
            return {"JobId": "job-retry-1"}

    j.retry(s3, Control(), ACCOUNT, original, report, confirm=True)
    (request,) = requests
    key = request["Manifest"]["Location"]["ObjectArn"].removeprefix("arn:aws:s3:::manifests/")
    assert request["Manifest"]["Location"]["ETag"] == s3.head_object(Bucket="manifests", Key=key)["ETag"].strip('"')
    body = s3.get_object(Bucket="manifests", Key=key)["Body"].read()
    assert request["ClientRequestToken"] == hashlib.sha256(b"job-copy-1\n" + body).hexdigest()
    assert request["ConfirmationRequired"] is False and request["Description"].startswith("tavari-dr: retry of ")
    assert j.planned_tasks({"Description": request["Description"]}) == 2  # a retry is confirmed like the rest


def test_retry_refuses_what_it_cannot_do(s3):
    write_report(s3, "job-copy-1", [("failed", FAILED[2:])])  # only "changed during restore"
    report = j.read_report(s3, job())
    with pytest.raises(j.JobError, match="no failed task to retry .1 changed during restore: plan the restore"):
        j.retry(s3, object(), ACCOUNT, job(), report)
    with pytest.raises(j.JobError, match="is Active: retry once it has finished"):
        j.retry(s3, object(), ACCOUNT, job(status="Active"), report)
    write_report(s3, "job-copy-1", [("failed", FAILED)])
    s3.put_object(Bucket="manifests", Key=f"restore-jobs/{RESTORE}/retry-of-job-copy-1.csv", Body=b"other")
    with pytest.raises(j.JobError, match="already exists with other content"):
        j.retry(s3, object(), ACCOUNT, job(), j.read_report(s3, job()))


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli(s3, control, monkeypatch):
    """The CLI with S3 Control stubbed (everything else on moto)."""
    client, stub = control
    real = AwsTarget.client

    def client_for(self, service, **kwargs):
        return client if service == "s3control" else real(self, service, **kwargs)

    monkeypatch.setattr(AwsTarget, "client", client_for)

    def run(*args, input=None):
        result = CliRunner().invoke(main, ["bucket", "jobs", *args, "--region", REGION], input=input)
        assert "Traceback" not in result.output
        return result.exit_code, result.output

    return run, stub


def audit_records(s3, action):
    listed_ = s3.list_objects_v2(Bucket="reports", Prefix=f"audit/{action}/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket="reports", Key=o["Key"])["Body"].read()) for o in listed_]


def test_cli_list_and_show(cli):
    run, stub = cli
    stub.add_response("list_jobs", {"Jobs": [listed("job-a", "tavari-dr: copy 10 versions back")]}, {
        "AccountId": ACCOUNT, "MaxResults": 1000, "JobStatuses": list(j.ACTIVE)})
    code, out = run("list", "--active", "--format", "json")
    assert code == 0 and json.loads(out)["result"]["jobs"][0]["job_id"] == "job-a"
    expect_describe(stub, job(status="Failed") | {"FailureReasons": [{"FailureCode": "Manifest",
                                                                       "FailureReason": "ETag mismatch"}]})
    code, out = run("show", "job-copy-1")
    assert code == 0 and "job job-copy-1: Failed" in out and "3/5 succeeded, 2 failed" in out
    assert f"restore       {RESTORE}" in out and "Manifest: ETag mismatch" in out


def test_cli_confirm_asks_then_records_who_started_the_job(cli, s3):
    run, stub = cli
    expect_describe(stub, job(status="Suspended", ok=0, failed=0))
    code, out = run("confirm", "job-copy-1", "--report-bucket", "reports", input="n\n")
    assert code == 1 and "not confirmed; nothing changed" in out and not audit_records(s3, "bucket_batch_confirm")
    expect_describe(stub, job(status="Suspended", ok=0, failed=0))
    stub.add_response("update_job_status", {"JobId": "job-copy-1", "Status": "Ready"}, {
        "AccountId": ACCOUNT, "JobId": "job-copy-1", "RequestedJobStatus": "Ready", "StatusUpdateReason": ANY})
    code, out = run("confirm", "job-copy-1", "--yes", "--report-bucket", "reports")
    assert code == 0, out
    (record,) = audit_records(s3, "bucket_batch_confirm")
    assert record["outcome"] == "confirmed: Ready" and record["source"]["restore_id"] == RESTORE
    assert record["details"] == {"tasks": 5, "planned": 5} and record["caller"].startswith("arn:aws:")


def test_cli_cancel_a_finished_job_is_refused_and_recorded(cli, s3):
    run, stub = cli
    expect_describe(stub, job(status="Complete"))
    code, out = run("cancel", "job-copy-1", "--yes", "--report-bucket", "reports")
    assert code == 1 and "only a job that has not finished can be cancelled" in out
    (record,) = audit_records(s3, "bucket_batch_cancel")
    assert record["outcome"].startswith("failed: job job-copy-1 is Complete")


def test_cli_report_records_the_restores_outcome_and_retry_creates_the_job(cli, s3):
    run, stub = cli
    write_report(s3, "job-copy-1", [("succeeded", SUCCEEDED), ("failed", FAILED)])
    expect_describe(stub, job())
    code, out = run("report", "job-copy-1", "--report-bucket", "reports", "--first", "1")
    assert code == 1, out  # the restore is not done while a task has failed
    assert "job job-copy-1: Complete: 3 succeeded, 3 failed" in out and "1  AccessDenied" in out
    assert "failed c,d.pdf (v4): AccessDenied 403" in out and "... and 2 more" in out
    assert "Error: 3 task(s) failed; retry them with `tavari-dr bucket jobs retry job-copy-1`" in out
    (record,) = audit_records(s3, "bucket_batch_result")
    assert record["outcome"] == "job Complete: 3 succeeded, 3 failed"
    assert record["details"]["restore_id"] == RESTORE and record["details"]["failed_by_error"]["InternalError"] == 1
    expect_describe(stub, job())
    stub.add_response("create_job", {"JobId": "job-retry-1"}, {
        "AccountId": ACCOUNT, "ConfirmationRequired": True, "Operation": ANY, "Report": ANY, "Priority": 10,
        "RoleArn": ANY, "Manifest": ANY, "ClientRequestToken": ANY, "Description": ANY})
    code, out = run("retry", "job-copy-1", "--yes", "--report-bucket", "reports", "--format", "json")
    assert code == 0, out
    answer = json.loads(out)["result"]
    assert answer["job_id"] == "job-retry-1" and answer["tasks"] == 2 and answer["left_for_a_new_plan"] == 1
    (record,) = audit_records(s3, "bucket_batch_retry")
    assert record["outcome"] == "retry job job-retry-1 created (awaiting confirmation)"


def test_cli_retry_asks_first_and_json_needs_yes(cli, s3):
    run, stub = cli
    code, out = run("retry", "job-copy-1", "--format", "json", "--report-bucket", "reports")
    assert code == 2 and "--format json needs --yes" in out  # before any AWS call
    write_report(s3, "job-copy-1", [("failed", FAILED)])
    expect_describe(stub, job())
    code, out = run("retry", "job-copy-1", "--report-bucket", "reports", input="n\n")
    assert code == 1 and "no retry created" in out and not audit_records(s3, "bucket_batch_retry")


def test_cli_report_of_a_job_that_all_succeeded_exits_0(cli, s3):
    run, stub = cli
    write_report(s3, "job-copy-1", [("succeeded", SUCCEEDED)])
    expect_describe(stub, job(total=3, ok=3, failed=0))
    code, out = run("report", "job-copy-1", "--report-bucket", "reports", "--format", "json")
    assert code == 0, out
    document = json.loads(out)["result"]
    assert (document["succeeded"], document["failed"], document["restore_id"]) == (3, 0, RESTORE)
    assert document["audit_record"]["record"].startswith("s3://reports/audit/bucket_batch_result/")


def test_cli_report_of_a_job_still_running_says_so(cli, s3):
    run, stub = cli
    expect_describe(stub, job(status="Active"))
    code, out = run("report", "job-copy-1", "--report-bucket", "reports")
    assert code == 1 and "is Active: no completion report" in out and len(out.strip().splitlines()) == 1
    assert not audit_records(s3, "bucket_batch_result")  # nothing finished, nothing to record
