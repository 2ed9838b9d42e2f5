"""The restore plan at S3 Batch Operations scale: manifests, two jobs, and the delete-marker Lambda.

When millions of keys changed, one machine's copies take too long; Batch Operations runs them
inside S3. It has no "create delete marker" operation, so delete markers go through a second
job that invokes a small deployed Lambda (LambdaInvoke). A Batch copy handles objects up to
5 GB; larger ones, and archived versions that need a Glacier restore first, stay on the CLI path.
"""

from __future__ import annotations

import csv
import io
import logging
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tavari_dr.bucket.restore import COPY, DELETE_MARKER, Action, Plan, VersioningGuard, encryption_args

log = logging.getLogger("tavari.bucket")

BATCH_COPY_LIMIT = 5 * 1024**3
MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
REPORT_FORMAT = "Report_CSV_20180820"


@dataclass
class BatchJobs:
    copy_job_id: str | None = None
    delete_marker_job_id: str | None = None
    manifests: list[str] = field(default_factory=list)
    cli_path: list[Action] = field(default_factory=list)  # > 5 GB or archived: run the CLI for these
    confirmation_required: bool = True


def manifest_csv(bucket: str, actions: list[Action], *, with_version: bool, current: bool = False) -> bytes:
    """Batch Operations CSV: bucket, URL-encoded key[, version ID]; no header. ``current``: the
    version column is the destination's current version at plan time (what the Lambda checks)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for a in actions:
        row = [bucket, urllib.parse.quote(a.key, safe="/")]
        if with_version:
            row.append((a.current if current else a.version_id) or "")
        writer.writerow(row)
    return out.getvalue().encode()


def create_jobs(s3: Any, s3control: Any, plan: Plan, *, account_id: str, role_arn: str,
                delete_marker_function_arn: str, manifest_bucket: str, confirm: bool = False,
                token: Callable[[], str] = lambda: str(uuid.uuid4())) -> BatchJobs:
    """Write the manifests and create the jobs (awaiting confirmation unless ``confirm``).

    Raises NotVersioned, before writing anything, unless both buckets' versioning is Enabled. The
    jobs run later, inside S3: the delete-marker Lambda checks versioning and each key's current
    version again per task (the manifest carries the version the plan saw); a Batch copy cannot
    check the destination, so a key written between plan and job is overwritten as the newest
    version (the application's version stays, as a noncurrent one) and shows up in a re-plan."""
    VersioningGuard(s3, {plan.bucket, plan.destination}).check()
    prefix = f"restore-jobs/{plan.fingerprint()}"
    copies: list[Action] = []
    markers: list[Action] = []
    jobs = BatchJobs(confirmation_required=not confirm)
    for a in plan.actions:
        if a.action == COPY and a.size <= BATCH_COPY_LIMIT:
            copies.append(a)
        elif a.action == DELETE_MARKER:
            markers.append(a)  # restore-tags and archived versions stay on the CLI path
        else:
            jobs.cli_path.append(a)
    report = {"Bucket": f"arn:aws:s3:::{manifest_bucket}", "Prefix": f"{prefix}/reports", "Format": REPORT_FORMAT,
              "Enabled": True, "ReportScope": "AllTasks"}

    def manifest(name: str, actions: list[Action], fields: list[str], *, current: bool = False) -> dict[str, Any]:
        key = f"{prefix}/{name}.csv"
        put = s3.put_object(Bucket=manifest_bucket, Key=key, ContentType="text/csv",
                            Body=manifest_csv(plan.bucket, actions, with_version="VersionId" in fields,
                                              current=current))
        jobs.manifests.append(f"s3://{manifest_bucket}/{key}")
        return {"Spec": {"Format": MANIFEST_FORMAT, "Fields": fields},
                # The job reads exactly this object version's bytes: the ETag pins it.
                "Location": {"ObjectArn": f"arn:aws:s3:::{manifest_bucket}/{key}", "ETag": put["ETag"].strip('"')}}

    common = {"AccountId": account_id, "ConfirmationRequired": not confirm, "Report": report, "Priority": 10,
              "RoleArn": role_arn}
    if copies:
        encryption = encryption_args(s3, plan.destination)
        copy_operation: dict[str, Any] = {"TargetResource": f"arn:aws:s3:::{plan.destination}",
                                          "MetadataDirective": "COPY"}
        if encryption.get("SSEKMSKeyId"):
            copy_operation["SSEAwsKmsKeyId"] = encryption["SSEKMSKeyId"]
        jobs.copy_job_id = s3control.create_job(
            **common, Operation={"S3PutObjectCopy": copy_operation},
            Manifest=manifest("copies", copies, ["Bucket", "Key", "VersionId"]),
            ClientRequestToken=token(),
            Description=f"tavari-dr: copy {len(copies)} versions back to {plan.to} in {plan.destination}",
        )["JobId"]
    if markers:
        jobs.delete_marker_job_id = s3control.create_job(
            **common,
            Operation={"LambdaInvoke": {"FunctionArn": delete_marker_function_arn, "InvocationSchemaVersion": "2.0",
                                        # restore_id: the plan's fingerprint, the CLI's correlation key
                                        "UserArguments": {"bucket": plan.destination,
                                                          "restore_id": plan.fingerprint()}}},
            Manifest=manifest("delete-markers", markers, ["Bucket", "Key", "VersionId"], current=True),
            ClientRequestToken=token(),
            Description=f"tavari-dr: {len(markers)} delete markers for keys created after {plan.to}",
        )["JobId"]
    return jobs


# --------------------------------------------------------------------------- the Lambda


def restore_id_of(event: dict[str, Any]) -> str | None:
    """The restore (plan fingerprint) a Batch Operations invocation belongs to, as the CLI named it."""
    arguments = event.get("job", {}).get("userArguments") if isinstance(event.get("job"), dict) else None
    return arguments.get("restore_id") if isinstance(arguments, dict) else None


def delete_marker_tasks(event: dict[str, Any], s3: Any) -> dict[str, Any]:
    """Batch Operations LambdaInvoke (schema 2.0): add a delete marker per task, never delete a version.

    Refuses (PermanentFailure) unless the bucket is the one the job named and is versioned:
    on an unversioned bucket DeleteObject would destroy data. A task whose s3VersionId (the key's
    current version when the restore was planned) is no longer the current one is not touched:
    PermanentFailure "changed during restore".
    """
    from botocore.exceptions import ClientError

    from tavari_dr.bucket.restore import current_entry

    bucket = event.get("job", {}).get("userArguments", {}).get("bucket")
    results = []
    versioned = None
    for task in event.get("tasks", []):
        task_bucket = task.get("s3Bucket")
        key = urllib.parse.unquote(task.get("s3Key", ""))
        if not bucket or task_bucket != bucket:
            code, text = "PermanentFailure", f"task bucket {task_bucket!r} is not the job's bucket {bucket!r}"
        else:
            if versioned is None:
                versioned = s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
            if not versioned:
                code, text = "PermanentFailure", f"{bucket} is not versioned; refusing to delete anything"
            else:
                try:
                    expected = task.get("s3VersionId")
                    now = current_entry(s3, bucket, key) if expected else None
                    if expected and now != expected:
                        code, text = "PermanentFailure", (f"changed during restore: current version {now or 'none'}, "
                                                          f"the plan saw {expected}; plan again")
                    else:
                        marker = s3.delete_object(Bucket=bucket, Key=key)
                        code, text = "Succeeded", f"delete marker {marker.get('VersionId')}"
                except ClientError as err:
                    error = err.response.get("Error", {}).get("Code", "")
                    temporary = error in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")
                    code, text = ("TemporaryFailure" if temporary else "PermanentFailure"), f"{error}: {err}"
        results.append({"taskId": task.get("taskId"), "resultCode": code, "resultString": text})
    outcomes: dict[str, int] = {}
    for result in results:
        outcomes[result["resultCode"]] = outcomes.get(result["resultCode"], 0) + 1
    # Counts only: a key is a customer's file name.
    log.info("delete_markers", extra={"batch_job_id": event.get("job", {}).get("id"), "tasks": len(results),
                                      "results": outcomes})
    return {"invocationSchemaVersion": "2.0", "treatMissingKeysAs": "PermanentFailure",
            "invocationId": event.get("invocationId"), "results": results}
