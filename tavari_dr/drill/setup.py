"""Setup: the services the drill runs on, held by the context's ExitStack, then the deployed app, the
Supabase stand-ins and the seeded data — everything the jobs and the scenarios start from."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tavari_dr.core import evidence, outputs
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.drill import capture
from tavari_dr.drill.context import Drill, Sizes, Step, environ
from tavari_dr.drill.state import bucket_state, fingerprints


def start(*, config: EnvironmentConfig, sizes: Sizes, cdk_json: Path, report_dir: Path, work: Path,
          say: Callable[[str], None], steps: list[Step], facts: dict, services: contextlib.ExitStack) -> Drill:
    """The AWS emulator and the PostgreSQL cluster standing in for Supabase's, entered into ``services``
    (which stops them, and everything a scenario adds to it, when the drill ends); the context around them."""
    from tavari_dr.drill.emulator import MotoServer
    from tavari_dr.drill.local_deploy import LocalDeployer
    from tavari_dr.drill.pgcluster import LocalPostgres

    # An AWS profile would win over the emulator's keys (and a missing one breaks every client):
    # hidden while the drill runs, put back when it ends.
    services.enter_context(environ({"AWS_PROFILE": None}))
    moto = services.enter_context(MotoServer(work / "moto.log"))
    from tavari_dr.drill.capture import LOGICAL

    # wal_level=logical: the change capture reads a logical replication slot, as on Supabase.
    primary = services.enter_context(LocalPostgres(settings=LOGICAL))
    return Drill(
        config=config, sizes=sizes, cdk_json=cdk_json, report_dir=report_dir, work=work, say=say, steps=steps,
        facts=facts, moto=moto, primary=primary, deployer=LocalDeployer(moto.url), services=services,
        env={"TAVARI_DR_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "drill", "AWS_SECRET_ACCESS_KEY": "drill",
             "AWS_SESSION_TOKEN": "drill", "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"},
        versions=evidence.versions(postgres_server=primary.server_version(), local=True))


def prepare(d: Drill, cdk_out: Path) -> None:
    """Deploy the synthesized app, start the stand-ins, seed the database and the invoices, push the
    configuration: the "setup" steps of the report."""
    d.step("setup", "deploy the synthesized templates into the emulator", lambda step: _deploy(d, step, cdk_out))
    _outputs(d)
    d.step("setup", "start the Supabase stand-ins (Management API, health endpoints)", lambda s: _start_standin(d, s))
    d.step("setup", "seed the database (Supabase-like schema, Tavari rows)", lambda s: _seed_database(d, s))
    d.step("setup", "seed invoice PDFs (several versions each)", lambda s: _seed_invoices(d, s))
    d.step("setup", "push configuration to Secrets Manager", lambda s: _push_secrets(d, s))
    d.step("setup", "start the change capture (db stream --setup, then db stream in the background)",
           lambda s: capture.start(d, s))


def _deploy(d: Drill, step: Step, cdk_out: Path) -> None:
    from tavari_dr.drill.local_deploy import DeployError

    d.deployment = d.deployer.deploy(cdk_out, progress=lambda m: d.say(f"  {m}"))
    errors = [e for r in d.deployment.stacks.values() for e in r.errors]
    step.detail = (f"{sum(len(r.applied) for r in d.deployment.stacks.values())} resources applied; "
                   f"moto's CloudFormation alone would have ignored: {', '.join(d.deployment.ignored_by_moto())}")
    if errors:
        raise DeployError("; ".join(errors))


def _outputs(d: Drill) -> None:
    out = d.deployment.outputs
    storage = out(d.config.stack_name(outputs.INVOICE_STORAGE))
    backups = out(d.config.stack_name(outputs.DATABASE_BACKUPS))
    d.invoice_bucket = storage[outputs.INVOICE_BUCKET_NAME]
    d.backup_bucket = backups[outputs.BACKUP_BUCKET_NAME]
    d.reports_bucket = backups[outputs.REPORTS_BUCKET_NAME]
    d.signing_key = backups[outputs.MANIFEST_SIGNING_KEY_ARN]
    d.change_signing_key = backups.get(outputs.CHANGE_SIGNING_KEY_ARN, "")  # where the capture is deployed
    replica = d.config.stack_name(outputs.INVOICE_REPLICA)
    d.replica_bucket = out(replica)[outputs.REPLICA_BUCKET_NAME] if replica in d.deployment.stacks else None


def _start_standin(d: Drill, step: Step) -> None:
    from tavari_dr.drill.standin import StandIn, health_path

    def database_check() -> bool:
        import psycopg

        # No connect_timeout: psycopg enforces it with a Python deadline on the monotonic clock,
        # which libfaketime (how the suite is checked on fixed dates) moves in jumps, failing
        # healthy connections. The app's database is on loopback: a stopped cluster refuses at once.
        with psycopg.connect(d.app_database_url, options="-c statement_timeout=3000") as conn:
            return conn.execute("SELECT count(*) FROM public.businesses").fetchone()[0] > 0

    d.supabase_token = "sbp_drill_" + hashlib.sha256(os.urandom(8)).hexdigest()[:24]
    d.standin = d.services.enter_context(StandIn(
        project_ref="drill", token=d.supabase_token, pitr_enabled=d.config.verification.expect_pitr,
        health_paths=[health_path(u) for u in d.config.drill.health_endpoints], database_check=database_check))
    step.detail = (f"{d.standin.url} (emulated: stands in for the Supabase Management API and "
                   f"{', '.join(d.config.drill.health_endpoints) or 'no health endpoint'})")


def _seed_database(d: Drill, step: Step) -> None:
    from tavari_dr.drill import demo_data

    d.database_url = d.primary.create_database("postgres_tavari")
    demo_data.create_supabase_like(d.database_url)
    demo_data.seed(d.database_url, businesses=d.sizes.businesses, calls=d.sizes.calls, messages=d.sizes.messages)
    d.app_database_url = d.database_url
    d.baseline = fingerprints(d.database_url)
    step.detail = ", ".join(f"{t} {v['rows']}" for t, v in d.baseline.items())


def _seed_invoices(d: Drill, step: Step) -> None:
    import psycopg

    with psycopg.connect(d.database_url) as conn:
        d.pdf_keys = [r[0] for r in conn.execute("SELECT pdf_key FROM public.invoices ORDER BY 1")]
    s3 = d.s3()
    puts = 0
    for version in range(1, d.sizes.invoice_versions + 1):
        for key in d.pdf_keys:
            body = (f"%PDF-1.7 {key} v{version}\n".encode() + os.urandom(d.sizes.pdf_bytes))
            s3.put_object(Bucket=d.invoice_bucket, Key=key, Body=body, ContentType="application/pdf")
            puts += 1
    d.replicate()
    time.sleep(1.1)  # S3 times have a resolution of one second: T must fall after the last write
    d.bucket_t0 = datetime.now(UTC)
    # ... and every later write in a later second than T's: a key written in T's own second is ambiguous to a
    # restore (tavari_dr.bucket.restore.in_second_of), which would leave the damage alone and exit 1.
    time.sleep(max(0.0, (d.bucket_t0.replace(microsecond=0) + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()
                   + 0.05))
    d.bucket_baseline = bucket_state(s3, d.invoice_bucket)
    step.counts.requests["put"] = puts
    step.detail = f"{len(d.pdf_keys)} invoices x {d.sizes.invoice_versions} versions" + (
        f"; replicated to {d.replica_bucket} by the drill, the way CRR would (moto never replicates)"
        if d.replica_bucket else "")


def env_values(d: Drill, rotated: bool = False) -> dict[str, str]:
    """The configuration the drill pushes: new keys each time (``rotated`` after the breach), the
    stand-ins' token and webhook, and the database the application runs on now."""
    tag = "rotated" if rotated else "initial"
    values = {
        "SUPABASE_URL": "https://drill.supabase.co",
        "SUPABASE_ANON_KEY": f"anon-{tag}-{os.urandom(6).hex()}",
        "SUPABASE_SERVICE_ROLE_KEY": f"service-{tag}-{os.urandom(6).hex()}",
        "SUPABASE_ACCESS_TOKEN": d.supabase_token,
        "BACKUP_DATABASE_URL": d.app_database_url,
        "ALERT_WEBHOOK_URL": f"{d.standin.url}/webhook",
        "SUPABASE_JWT_SECRET": f"jwt-{tag}-{os.urandom(16).hex()}",
        "STREAM_DATABASE_URL": d.app_database_url,
    }
    for key in d.config.secrets.third_party_keys:
        values[key] = f"{key.lower()}-{tag}-{os.urandom(6).hex()}"
    declared = {e.name for e in d.config.secrets.all_entries}
    return {k: v for k, v in values.items() if k in declared}


def _push_secrets(d: Drill, step: Step) -> None:
    d.env_values = env_values(d)
    path = d.write_env(d.env_values, "tavari.env")
    d.log(step, d.cli(step, "secrets", "push", "--env", d.config.name, "--env-file", str(path), "--apply"))
