"""The jobs the drill runs before any disaster, as production would: the secrets check, the nightly
backup, the scheduled verification Lambdas (in process, with their deployed environment), the
operator's `tavari-dr verify`, the data exports and the weekly backup check."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from tavari_dr.core import outputs
from tavari_dr.drill.context import Drill, DrillFailed, Step, environ


def run(d: Drill) -> None:
    d.step("jobs", "secrets check", lambda s: secrets_check(d, s))
    d.step("jobs", "nightly off-site database backup", lambda s: _backup(d, s))
    d.step("jobs", "daily, weekly and monthly verification checks", lambda s: _verify(d, s))
    d.step("jobs", "tavari-dr verify (the same checks, by hand)", lambda s: _verify_cli(d, s))
    d.step("jobs", "data exports: one account (GDPR) and the tables (CSV)", lambda s: _exports(d, s))
    d.step("jobs", "weekly backup check (sha256 + table of contents)", lambda s: _quick_check(d, s))


def secrets_check(d: Drill, step: Step) -> None:
    answer = d.cli_json(step, "secrets", "check", "--env", d.config.name)
    step.detail = f"all {len(answer['entries'])} entries ok"


def latest_backup(d: Drill) -> Any:
    from tavari_dr.database import backup as db_backup
    from tavari_dr.database.signing import KmsVerifier

    verifier = KmsVerifier(d.deployer.client("kms", d.config.region), d.signing_key)
    opened = db_backup.find_backup(d.s3(), d.backup_bucket, "latest", verifier=verifier,
                                   tiers=d.config.database_backups.tiers)
    return opened.entry, opened.manifest


def _backup(d: Drill, step: Step) -> None:
    d.log(step, d.cli(step, "db", "backup", "--env", d.config.name, "--reason", "nightly", "--publish-metrics"))
    _, d.backup_manifest = latest_backup(d)
    step.counts.rows = sum(d.backup_manifest.tables.values())


# The daily check of the continuous capture's newest segment: it has nothing to find unless the drill runs
# `tavari-dr db stream` (setup starts it before the jobs, as the ECS service runs in production).
CHANGE_CHECK = "change_freshness"


# The drill's job steps leave the capture's freshness check out, though the drill runs the capture
# (capture.start): that check compares the newest segment's age with changes.max_lag_seconds, and in the drill
# the age is how long the emulated steps took on this machine, not the capture's health (it failed a loaded CI
# run with the capture well). The capture is judged by the restore --to scenarios; the steps say so.
UNEXERCISED = ("not exercised by the job steps: in the drill the newest segment's age measures the machine, "
               "not the capture, which the restore --to scenarios judge")


def _verify(d: Drill, step: Step) -> None:
    from tavari_dr.verification import jobs as verification

    stack = d.deployment.stacks[d.config.stack_name(outputs.DATABASE_BACKUPS)]
    results, unexercised = {}, False
    for job in verification.JOBS:
        environment = dict(next(v for description, v in stack.functions.items()
                                if description.endswith(f": {job}")))
        # The scheduled Lambda's own environment, as deployed; only the Management API is the stand-in.
        settings = json.loads(environment["TAVARI_VERIFICATION"])
        settings["supabase_api_url"] = d.standin.url
        environment["TAVARI_VERIFICATION"] = json.dumps(settings)
        targets = json.loads(environment["TAVARI_TARGETS"])
        if targets.get("changes_enabled"):
            # The check is told the capture is off (and the step's detail says why: _without_capture).
            targets["changes_enabled"], unexercised = False, True
            environment["TAVARI_TARGETS"] = json.dumps(targets)
        metrics_lines = io.StringIO()  # the handlers' EMF lines, which Lambda would send to CloudWatch
        with environ({**d.env, "AWS_PROFILE": None, "AWS_ENDPOINT_URL": d.moto.url, "AWS_REGION": d.config.region,
                      "AWS_DEFAULT_REGION": d.config.region}), contextlib.redirect_stdout(metrics_lines):
            results.update(verification.handle(job, environment)["results"])
    failed = {name: status for name, status in results.items() if status != "PASS"}
    step.detail = ", ".join(f"{n} {s}" for n, s in results.items()) + (
        f" ({CHANGE_CHECK} {UNEXERCISED})" if unexercised else "")
    d.facts["checks"] = results
    if failed:
        raise DrillFailed(f"checks failed: {failed}")


def _verify_cli(d: Drill, step: Step) -> None:
    """The operator's `tavari-dr verify`; its cdk.json differs from the project's only in the
    Management API URL (the stand-in)."""
    context = json.loads(d.cdk_json.read_text())
    settings = context["context"]["environments"][d.config.name].setdefault("verification", {})
    settings["supabase_api_url"] = d.standin.url
    copy = d.work / "cdk.json"
    copy.write_text(json.dumps(context))
    from tavari_dr.verification import jobs as verification

    backups = d.deployment.stacks[d.config.stack_name(outputs.DATABASE_BACKUPS)]
    skip = outputs.CHANGE_CAPTURE_SERVICE_NAME in backups.outputs
    only = [arg for name in verification.CHECKS if not (skip and name == CHANGE_CHECK) for arg in ("--check", name)]
    answer = d.cli_json(step, "verify", "--env", d.config.name, "--cdk-json", str(copy), *(only if skip else ()))
    step.detail = f"all {len(answer['checks'])} checks passed" + (
        f" ({CHANGE_CHECK} {UNEXERCISED})" if skip else "")


def _exports(d: Drill, step: Step) -> None:
    import zipfile

    import psycopg

    with psycopg.connect(d.database_url) as conn:
        user = str(conn.execute("SELECT owner_id FROM public.businesses ORDER BY 1 LIMIT 1").fetchone()[0])
    archive = d.work / "account.zip"
    d.cli(step, "export", "account", "--user-id", user, "--database-url", d.database_url, "--out", str(archive),
          "--env", d.config.name)
    with zipfile.ZipFile(archive) as zf:
        metadata = json.loads(zf.read("metadata.json"))
    if metadata["user_id"] != user or not metadata["files"]["messages.jsonl"]["rows"]:
        raise DrillFailed("the account export does not hold the user's messages")
    tables = d.work / "tables"
    d.cli(step, "export", "tables", "--database-url", d.database_url, "--out", str(tables))
    manifest = json.loads((tables / "manifest.json").read_text())
    counts = {t: v["rows"] for t, v in manifest["tables"].items()}
    expected = {t: d.baseline[t]["rows"] for t in counts}
    if counts != expected:
        raise DrillFailed(f"table export counts {counts} differ from the database's {expected}")
    step.detail = (f"account {user}: {sum(f.get('rows', 0) for f in metadata['files'].values())} rows; "
                   f"{len(counts)} tables as CSV")


def _quick_check(d: Drill, step: Step) -> None:
    answer = d.cli_json(step, "db", "verify", "--env", d.config.name, "--quick")
    step.detail = f"{answer['backup_id']}: quick check passed in {answer['duration_seconds']:.1f} s"


def corrupt_newest_backup(d: Drill) -> None:
    """--inject-fault corrupt-backup: the drill must then fail at the restore step."""
    _, manifest = latest_backup(d)
    name = next(n for n in manifest.artifacts if n.startswith("data"))
    key = manifest.artifacts[name]["key"]
    d.s3().put_object(Bucket=d.backup_bucket, Key=key, Body=b"not a dump")  # a second version: tampering
    d.say(f"[fault] overwrote {key} in the backup bucket")
