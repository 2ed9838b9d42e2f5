"""The restore's S3 Batch Operations jobs, followed to the end: list, describe, confirm, cancel, read
the completion report, and retry the failed tasks as a new job (`tavari-dr bucket jobs`).

Ours are the jobs whose description starts with ``tavari-dr:`` (create_jobs writes it; ListJobs
returns it, so finding them costs no call per job, which a job tag would). Jobs are created awaiting
confirmation: S3 prepares the job (reads the manifest, counts the tasks) and stops in Suspended;
``confirm`` checks that the task count is the plan's before anything is written.

The completion report (Report_CSV_20180820) is ``<prefix>/job-<id>/manifest.json`` naming the result
CSV files, each with its MD5; a row is Bucket, Key (URL-encoded, as in the job's manifest),
VersionId, TaskStatus, then the error code and the HTTP status (the User Guide's ReportSchema line
lists ErrorCode before HTTPStatusCode; its own example rows, and S3, write the status first: the
numeric one is the status), and ResultMessage.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from tavari_dr.bucket.batch import MANIFEST_FORMAT
from tavari_dr.core import s3sink

DESCRIPTION_PREFIX = "tavari-dr:"
ACTIVE = ("New", "Preparing", "Ready", "Active", "Pausing", "Paused", "Suspended", "Cancelling", "Completing",
          "Failing")
TERMINAL = ("Complete", "Cancelled", "Failed")
CANCELLABLE = ("New", "Preparing", "Ready", "Active", "Paused", "Pausing", "Suspended")
CHANGED = "changed during restore"  # the delete-marker Lambda's refusal: a new plan, not a retry, fixes it
_JOB_ID = re.compile(r"^[a-zA-Z0-9\-_]{5,36}$")  # S3 Control's JobId pattern
_PLANNED = re.compile(r"^tavari-dr: (?:copy |retry of \S+: )?(\d+) ")


class JobError(Exception):
    """The job cannot be acted on as asked (not ours, not in that state, no report yet); the message says why."""


@dataclass(frozen=True)
class JobSummary:
    """One job as ListJobs shows it (plain values: ``tavari-dr status`` prints these)."""

    job_id: str
    description: str
    status: str
    operation: str
    created: str | None
    terminated: str | None
    total: int
    succeeded: int
    failed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


def is_ours(description: str | None) -> bool:
    return bool(description) and str(description).startswith(DESCRIPTION_PREFIX)


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id or ""):
        raise JobError(f"{job_id!r} is not a Batch Operations job ID (5-36 letters, digits, - or _)")
    return job_id


def list_jobs(s3control: Any, account_id: str, *, statuses: tuple[str, ...] | None = None) -> list[JobSummary]:
    """This tool's jobs, newest first (every page of ListJobs)."""
    found: list[JobSummary] = []
    request: dict[str, Any] = {"AccountId": account_id, "MaxResults": 1000}
    if statuses:
        request["JobStatuses"] = list(statuses)
    while True:
        page = s3control.list_jobs(**request)
        for job in page.get("Jobs", []):
            if not is_ours(job.get("Description")):
                continue
            progress = job.get("ProgressSummary", {})
            found.append(JobSummary(
                job_id=job["JobId"], description=job.get("Description", ""), status=job.get("Status", ""),
                operation=job.get("Operation", ""), created=_iso(job.get("CreationTime")),
                terminated=_iso(job.get("TerminationDate")), total=int(progress.get("TotalNumberOfTasks", 0)),
                succeeded=int(progress.get("NumberOfTasksSucceeded", 0)),
                failed=int(progress.get("NumberOfTasksFailed", 0))))
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    return sorted(found, key=lambda j: j.created or "", reverse=True)


def active_jobs(s3control: Any, account_id: str) -> list[dict[str, Any]]:
    """This tool's jobs still in flight (not Complete, Cancelled or Failed), as plain dicts."""
    return [j.as_dict() for j in list_jobs(s3control, account_id, statuses=ACTIVE)]


def describe(s3control: Any, account_id: str, job_id: str, *, ours: bool = True) -> dict[str, Any]:
    """DescribeJob's ``Job``; with ``ours``, refuses a job this tool did not create."""
    job = s3control.describe_job(AccountId=account_id, JobId=check_job_id(job_id))["Job"]
    if ours and not is_ours(job.get("Description")):
        raise JobError(f"job {job_id} was not created by tavari-dr (its description does not start with "
                       f"{DESCRIPTION_PREFIX!r}); leaving it alone")
    return job


def planned_tasks(job: dict[str, Any]) -> int | None:
    """How many tasks the plan put in the job's manifest, as its description says."""
    found = _PLANNED.match(job.get("Description") or "")
    return int(found.group(1)) if found else None


def confirm(s3control: Any, account_id: str, job: dict[str, Any]) -> str:
    """Start a job that awaits confirmation, once S3's task count is the plan's; returns the new status."""
    job_id, status = job["JobId"], job.get("Status")
    if status != "Suspended":
        raise JobError(f"job {job_id} is {status}, not Suspended awaiting confirmation; nothing to confirm")
    total = int(job.get("ProgressSummary", {}).get("TotalNumberOfTasks", 0))
    planned = planned_tasks(job)
    if planned is not None and total != planned:
        raise JobError(f"job {job_id} read {total} tasks from its manifest, the plan had {planned}: cancel it "
                       "and plan the restore again")
    answer = s3control.update_job_status(AccountId=account_id, JobId=job_id, RequestedJobStatus="Ready",
                                         StatusUpdateReason="confirmed with tavari-dr bucket jobs confirm")
    return answer.get("Status", "Ready")


def cancel(s3control: Any, account_id: str, job: dict[str, Any]) -> str:
    job_id, status = job["JobId"], job.get("Status")
    if status not in CANCELLABLE:
        raise JobError(f"job {job_id} is {status}: only a job that has not finished can be cancelled")
    answer = s3control.update_job_status(AccountId=account_id, JobId=job_id, RequestedJobStatus="Cancelled",
                                         StatusUpdateReason="cancelled with tavari-dr bucket jobs cancel")
    return answer.get("Status", "Cancelling")


def restore_id(job: dict[str, Any]) -> str | None:
    """The restore (plan fingerprint) the job belongs to: its manifest sits under restore-jobs/<id>/."""
    arn = job.get("Manifest", {}).get("Location", {}).get("ObjectArn", "")
    found = re.search(r":::[^/]+/restore-jobs/([^/]+)/", arn)
    return found.group(1) if found else None


# --------------------------------------------------------------------------- the completion report


@dataclass
class Failure:
    bucket: str
    key: str
    version_id: str
    error_code: str
    http_status: str
    message: str


@dataclass
class Report:
    """A job's completion report, summarised; ``failed_tasks`` holds every failed row (for a retry)."""

    job_id: str
    status: str
    files: list[str]
    succeeded: int = 0
    failed: int = 0
    by_error: Counter = field(default_factory=Counter)
    first_failures: list[Failure] = field(default_factory=list)
    failed_tasks: list[Failure] = field(default_factory=list)

    def as_dict(self, *, first: int | None = None) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status, "files": self.files, "succeeded": self.succeeded,
                "failed": self.failed, "failed_by_error": dict(self.by_error.most_common()),
                "first_failures": [asdict(f) for f in self.first_failures[:first]]}


def _bucket_of(arn: str) -> str:
    return arn.removeprefix("arn:aws:s3:::").split("/", 1)[0]


def report_manifest_key(job: dict[str, Any]) -> tuple[str, str]:
    report = job.get("Report") or {}
    if not report.get("Enabled") or not report.get("Bucket"):
        raise JobError(f"job {job['JobId']} was created without a completion report")
    prefix = (report.get("Prefix") or "").strip("/")
    return _bucket_of(report["Bucket"]), posixpath.join(prefix, f"job-{job['JobId']}", "manifest.json")


def report_rows(text: str) -> Iterator[Failure | None]:
    """Each CSV row as a Failure (failed tasks) or None (succeeded)."""
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) < 4:
            raise JobError(f"completion report row has {len(row)} fields, expected 7: {row[:3]}")
        row = [*row, "", "", ""][:7]
        bucket, key, version, status, fifth, sixth, message = row
        # The numeric one of the two middle fields is the HTTP status (see the module's note).
        http, code = (fifth, sixth) if fifth.isdigit() or not sixth.isdigit() else (sixth, fifth)
        if status.lower() == "succeeded":
            yield None
        else:
            yield Failure(bucket, urllib.parse.unquote(key), version, code, http, message)


def read_report(s3: Any, job: dict[str, Any], *, first: int = 20) -> Report:
    """Read the job's completion report (manifest.json, then every result file, each MD5-checked)."""
    job_id, status = job["JobId"], job.get("Status", "")
    bucket, key = report_manifest_key(job)
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        raise JobError(f"job {job_id} is {status}: no completion report at s3://{bucket}/{key} yet (S3 writes it "
                       "when the job completes, fails or is cancelled)") from None
    if manifest.get("Format") != "Report_CSV_20180820":
        raise JobError(f"s3://{bucket}/{key}: report format {manifest.get('Format')!r}, expected Report_CSV_20180820")
    results = manifest.get("Results", [])
    report = Report(job_id, status, [f"s3://{r['Bucket']}/{r['Key']}" for r in results])
    for result in results:
        body = s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read()
        if result.get("MD5Checksum") and hashlib.md5(body).hexdigest() != result["MD5Checksum"]:  # noqa: S324
            raise JobError(f"s3://{result['Bucket']}/{result['Key']}: MD5 differs from the report manifest's")
        for failure in report_rows(body.decode("utf-8")):
            if failure is None:
                report.succeeded += 1
                continue
            report.failed += 1
            report.by_error[failure.error_code or "(none)"] += 1
            report.failed_tasks.append(failure)
            if len(report.first_failures) < first:
                report.first_failures.append(failure)
    return report


# --------------------------------------------------------------------------- retry


@dataclass
class Retry:
    job_id: str
    manifest: str
    tasks: int
    left_for_a_new_plan: int
    confirmation_required: bool


def retry_manifest(failures: list[Failure]) -> bytes:
    """The failed tasks as a Batch Operations manifest (bucket, URL-encoded key, version; no header)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for f in failures:
        writer.writerow([f.bucket, urllib.parse.quote(f.key, safe="/"), f.version_id])
    return out.getvalue().encode()


def retry(s3: Any, s3control: Any, account_id: str, job: dict[str, Any], report: Report, *,
          confirm: bool = False) -> Retry:
    """A new job with the same operation, role and report over the failed tasks only (not the ones the
    Lambda refused as changed during restore: those need a new plan). Running it again creates nothing
    new: the manifest is written once (If-None-Match) and the request token is derived from it."""
    job_id, status = job["JobId"], job.get("Status")
    if status not in TERMINAL:
        raise JobError(f"job {job_id} is {status}: retry once it has finished (Complete, Failed or Cancelled)")
    tasks = [f for f in report.failed_tasks if CHANGED not in f.message]
    if not tasks:
        raise JobError(f"job {job_id}: no failed task to retry" + (
            f" ({report.failed} changed during restore: plan the restore again)" if report.failed else ""))
    arn = job["Manifest"]["Location"]["ObjectArn"]
    bucket, _, original_key = arn.removeprefix("arn:aws:s3:::").partition("/")
    key = posixpath.join(posixpath.dirname(original_key), f"retry-of-{job_id}.csv")
    body = retry_manifest(tasks)
    version = s3sink.put_new(s3, bucket, key, body, error=JobError, ContentType="text/csv")
    head = s3.head_object(Bucket=bucket, Key=key, **({"VersionId": version} if version else {}))
    token = hashlib.sha256(f"{job_id}\n".encode() + body).hexdigest()  # 64 characters, S3 Control's limit
    description = f"tavari-dr: retry of {job_id}: {len(tasks)} failed tasks of {job.get('Description', '')}"
    created = s3control.create_job(
        AccountId=account_id, ConfirmationRequired=not confirm, Operation=job["Operation"], Report=job["Report"],
        Manifest={"Spec": {"Format": MANIFEST_FORMAT, "Fields": ["Bucket", "Key", "VersionId"]},
                  # The job reads exactly this object version's bytes: the ETag pins it.
                  "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/{key}", "ETag": head["ETag"].strip('"')}},
        Priority=job.get("Priority", 10), RoleArn=job["RoleArn"], ClientRequestToken=token,
        Description=description[:256])
    return Retry(created["JobId"], f"s3://{bucket}/{key}", len(tasks), report.failed - len(tasks), not confirm)
