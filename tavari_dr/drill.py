"""`tavari-dr drill --local`: the plan's disaster scenarios, played end to end on this machine.

A moto server stands in for AWS, a throwaway PostgreSQL cluster for Supabase's database, and a
small HTTP server for the Supabase Management API and the application's health endpoints. The
app's synthesized templates are deployed into the emulator (tavari_dr.local_deploy), data is
seeded, the real jobs run, and then the three scenarios are played with the same `tavari-dr`
commands the runbooks give (run as separate processes, exactly as an operator types them).

Every step records what it did — requests by kind, bytes, rows, commands started — and the cost
model (tavari_dr.costmodel) prices those counts at the production sizes in cdk.json (``drill``):
that projected RTO is what is judged, so the verdict is the same on an idle and on a loaded
machine. Wall time is still measured and shown, for information only. The report is an evidence
pack: commit, versions, host, operator, every command exactly as run, the per-key restore reports,
and a SHA256SUMS over its files; it validates against tavari_dr/data/drill-report.schema.json.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tavari_dr import costmodel, evidence, outputs, schedule
from tavari_dr.aws import REQUEST_COUNTS_ENV, RequestCounter
from tavari_dr.config import EnvironmentConfig
from tavari_dr.costmodel import Counts

CRITICAL, NON_CRITICAL = "critical", "non-critical"
FAULTS = ("corrupt-backup",)
SCHEMA_VERSION = 1
# How the cost model prices a step (tavari_dr.costmodel): see LocalDrill._model.
KINDS = ("cli", "provision", "db_restore", "db_scan", "bucket_restore", "bucket_restore_new", "bucket_verify",
         "health")


@dataclass
class Step:
    scenario: str
    name: str
    seconds: float = 0.0  # wall time on this machine: shown, never judged
    ok: bool = True
    detail: str = ""
    command: str | None = None
    commands: list[str] = field(default_factory=list)  # every command, exactly as run
    recovery: str | None = None  # CRITICAL / NON_CRITICAL: counts towards that RTO
    kind: str | None = None  # one of KINDS: how the cost model prices it
    counts: Counts = field(default_factory=Counts)
    toy_actions: int = 0  # bucket restores: actions in the toy plan (per-object requests scale from it)
    versions_per_key: float = 0.0  # bucket restores: listing entries per key of the bucket it listed
    model: dict[str, Any] | None = None
    projected_seconds: float | None = None


@dataclass
class Sizes:
    """Toy data seeded by the drill."""

    businesses: int = 12
    calls: int = 200
    messages: int = 4000
    invoice_versions: int = 3
    pdf_bytes: int = 40_000


class DrillFailed(Exception):
    pass


def fingerprints(url: str) -> dict[str, dict[str, Any]]:
    """Row count and an order-independent content hash of every user table."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url) as conn:
        tables = [f"{s}.{t}" for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema = 'public' ORDER BY 1, 2")]
        result = {}
        for table in tables:
            schema, name = table.split(".")
            rows, digest = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
                "FROM {} t").format(sql.Identifier(schema, name))).fetchone()
            result[table] = {"rows": rows, "md5": digest}
    return result


def bucket_state(s3: Any, bucket: str) -> dict[str, str]:
    """Visible keys -> sha256 of their bytes, read on costmodel.DRILL_VERIFY_CONCURRENCY connections."""
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]

    def digest(key: str) -> str:
        return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()

    with ThreadPoolExecutor(max_workers=costmodel.DRILL_VERIFY_CONCURRENCY) as pool:
        return dict(zip(keys, pool.map(digest, keys), strict=True))


def state_bytes(s3: Any, bucket: str) -> int:
    return sum(item["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
               for item in page.get("Contents", []))


def state_difference(state: dict[str, str], expected: dict[str, str]) -> str:
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    changed = sorted(k for k in set(state) & set(expected) if state[k] != expected[k])
    return (f"{len(missing)} missing {missing[:3]}, {len(extra)} unexpected {extra[:3]}, "
            f"{len(changed)} with other bytes {changed[:3]}")


def emulate_crr(s3: Any, source: str, destination: str, done: set[tuple[str, str]]) -> int:
    """Copy every version and delete marker not yet in ``done``, oldest first, as CRR would have
    (moto never replicates). Called right after each round of writes, so replicas lag by seconds."""
    events = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=source):
        # S3 times have one-second resolution: within a second, the current version (IsLatest) is
        # the newest, and versions among themselves are listed newest first.
        for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
            events.append((version["LastModified"], version["Key"], version.get("IsLatest", False), -len(events),
                           version["VersionId"], "Size" not in version))
    copied = 0
    for _, key, _, _, version_id, is_marker in sorted(events):
        if (key, version_id) in done:
            continue
        done.add((key, version_id))
        if is_marker:
            s3.delete_object(Bucket=destination, Key=key)
        else:
            s3.copy_object(Bucket=destination, Key=key, CopySource={"Bucket": source, "Key": key,
                                                                    "VersionId": version_id})
        copied += 1
    return copied


class LocalDrill:
    def __init__(self, config: EnvironmentConfig, cdk_out: Path, report_dir: Path, *, sizes: Sizes | None = None,
                 fault: str | None = None, progress: Callable[[str], None] = print,
                 cdk_json: Path = Path("cdk.json"), operator: str | None = None) -> None:
        self.config, self.cdk_out, self.report_dir = config, cdk_out, report_dir
        self.sizes, self.fault, self.say = sizes or Sizes(), fault, progress
        # Every command the drill starts reads this file, never whatever cdk.json lies in its directory.
        self.cdk_json = Path(cdk_json).resolve()
        self.operator = operator or evidence.os_user()
        self.steps: list[Step] = []
        self.facts: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.work = Path(tempfile.mkdtemp(prefix="tavari-drill-"))
        self._counts_files = itertools.count(1)

    # ------------------------------------------------------------------ plumbing

    def step(self, scenario: str, name: str, action: Callable[[Step], None], *, recovery: str | None = None,
             kind: str | None = None) -> Step:
        assert kind is None or kind in KINDS, kind
        step = Step(scenario, name, recovery=recovery, kind=kind)
        self.say(f"[{scenario}] {name} ...")
        started = time.monotonic()
        try:
            action(step)
        except Exception as error:
            step.ok = False
            step.detail = (step.detail + "; " if step.detail else "") + f"{type(error).__name__}: {error}"
        step.seconds = round(time.monotonic() - started, 3)
        self.steps.append(step)
        self.say(f"[{scenario}] {name}: {'ok' if step.ok else 'FAILED'} in {step.seconds:.1f} s"
                 + (f" — {step.detail}" if step.detail and not step.ok else ""))
        if not step.ok:
            raise DrillFailed(f"{scenario}: {name}: {step.detail}")
        return step

    def subprocess_env(self) -> dict[str, str]:
        """The environment of every process the drill starts: the caller's, pointed at the emulator,
        without an AWS profile (which would win over the emulator's credentials). The caller's own
        environment is never changed."""
        return {**{k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}, **self.env}

    def cli(self, step: Step, *args: str) -> str:
        """Run `tavari-dr ARGS` as its own process against the emulator, as an operator would; what it
        asked of AWS is added to the step's counts."""
        if "--env" in args and "--cdk-json" not in args:
            args = (*args, "--cdk-json", str(self.cdk_json))
        command = "tavari-dr " + " ".join(shlex.quote(a) for a in args)
        step.commands.append(command)
        step.command = "; ".join(step.commands)
        counts_file = self.work / f"requests-{next(self._counts_files)}.json"
        result = subprocess.run([sys.executable, "-m", "tavari_dr", *args],
                                env={**self.subprocess_env(), REQUEST_COUNTS_ENV: str(counts_file)},
                                capture_output=True, text=True, timeout=600, cwd=self.config_dir)
        if counts_file.exists():
            step.counts.add(Counts.from_json(json.loads(counts_file.read_text())))
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise DrillFailed(f"`{command}` exited {result.returncode}: {output[-600:]}")
        return output

    def counted_s3(self, step: Step) -> Any:
        """An S3 client of the drill's own whose requests count towards ``step``."""
        import boto3

        from tavari_dr.aws import EMULATOR_CONFIG

        counter = RequestCounter()
        counter.counts = step.counts
        return counter.attach(boto3.client(
            "s3", region_name=self.config.region, endpoint_url=self.moto.url, aws_access_key_id="drill",
            aws_secret_access_key="drill", config=EMULATOR_CONFIG))  # noqa: S106 - the emulator's throwaway keys

    def s3(self, dr: bool = False) -> Any:
        return self.deployer.client("s3", self.config.replication.region if dr else self.config.region)

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        from tavari_dr.emulator import MotoServer
        from tavari_dr.local_deploy import LocalDeployer
        from tavari_dr.pgcluster import LocalPostgres

        self.started = datetime.now(UTC)
        self.config_dir = self.cdk_json.parent
        self._clear_previous_report()
        error = None
        self.say(f"drill of {self.config.name}: emulator, PostgreSQL and Supabase stand-ins starting")
        try:
            # An AWS profile would win over the emulator's keys (and a missing one breaks every client):
            # hidden while the drill runs, put back when it ends.
            with _environ({"AWS_PROFILE": None}), MotoServer(self.work / "moto.log") as moto, \
                    LocalPostgres() as primary:
                self.moto, self.primary = moto, primary
                self.env = {"TAVARI_DR_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "drill",
                            "AWS_SECRET_ACCESS_KEY": "drill", "AWS_SESSION_TOKEN": "drill",
                            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}
                self.deployer = LocalDeployer(moto.url)
                self.versions = evidence.versions(postgres_server=primary.server_version(), local=True)
                self.secondary: LocalPostgres | None = None
                try:
                    self._play()
                finally:
                    if self.secondary is not None:
                        self.secondary.stop()
                    if getattr(self, "standin", None) is not None:
                        self.standin.__exit__()
        except DrillFailed as failed:
            error = str(failed)
        except Exception as crashed:  # a failure outside a step (setup, the incident itself): still a report
            error = f"{type(crashed).__name__}: {crashed}"
            self.say(f"drill stopped: {error}")
        report = self._report(error)
        if report["passed"]:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            self.say(f"work files kept for the investigation: {self.work} (emulator log, env files, restore state)")
        return report

    def _clear_previous_report(self) -> None:
        """A new run replaces the drill's own files in the report folder (a stale restore journal would
        make this run skip work and count less); anything else there is left alone."""
        if not self.report_dir.is_dir():
            return
        for name in ("drill-report.json", "drill-report.md", evidence.SUMS):
            (self.report_dir / name).unlink(missing_ok=True)
        for state_dir in self.report_dir.glob("bucket-restore-scenario-*"):
            shutil.rmtree(state_dir)

    def _play(self) -> None:
        from tavari_dr.local_deploy import DeployError

        def deploy(step: Step) -> None:
            self.deployment = self.deployer.deploy(self.cdk_out, progress=lambda m: self.say(f"  {m}"))
            errors = [e for r in self.deployment.stacks.values() for e in r.errors]
            step.detail = (f"{sum(len(r.applied) for r in self.deployment.stacks.values())} resources applied; "
                           f"moto's CloudFormation alone would have ignored: "
                           f"{', '.join(self.deployment.ignored_by_moto())}")
            if errors:
                raise DeployError("; ".join(errors))

        self.step("setup", "deploy the synthesized templates into the emulator", deploy)
        self._outputs()
        self.step("setup", "start the Supabase stand-ins (Management API, health endpoints)", self._start_standin)
        self.step("setup", "seed the database (Supabase-like schema, Tavari rows)", self._seed_database)
        self.step("setup", "seed invoice PDFs (several versions each)", self._seed_invoices)
        self.step("setup", "push configuration to Secrets Manager", self._push_secrets)
        self.step("jobs", "secrets check", lambda s: self._log(s, self.cli(s, "secrets", "check", "--env",
                                                                              self.config.name)))
        self.step("jobs", "nightly off-site database backup", self._backup)
        self.step("jobs", "daily, weekly and monthly verification checks", self._verify)
        self.step("jobs", "tavari-dr verify (the same checks, by hand)", self._verify_cli)
        self.step("jobs", "data exports: one account (GDPR) and the tables (CSV)", self._exports)
        self.step("jobs", "weekly backup check (sha256 + table of contents)",
                  lambda s: self._log(s, self.cli(s, "db", "verify", "--env", self.config.name, "--quick")))
        if self.fault == "corrupt-backup":
            self._corrupt_newest_backup()
        self._scenario_corruption()
        self._scenario_breach()
        self._scenario_total_failure()

    @staticmethod
    def _log(step: Step, output: str) -> None:
        """The command's summary line (its last line that is not a progress bar)."""
        lines = [line for line in output.splitlines() if line.strip() and "\r" not in line
                 and not line.lstrip().startswith(("restoring", "["))]
        step.detail = lines[-1].strip() if lines else ""

    def _outputs(self) -> None:
        out = self.deployment.outputs
        storage = out(self.config.stack_name(outputs.INVOICE_STORAGE))
        backups = out(self.config.stack_name(outputs.DATABASE_BACKUPS))
        self.invoice_bucket = storage[outputs.INVOICE_BUCKET_NAME]
        self.backup_bucket = backups[outputs.BACKUP_BUCKET_NAME]
        self.reports_bucket = backups[outputs.REPORTS_BUCKET_NAME]
        replica = self.config.stack_name(outputs.INVOICE_REPLICA)
        self.replica_bucket = out(replica)[outputs.REPLICA_BUCKET_NAME] if replica in self.deployment.stacks else None
        self.replicated: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ setup

    def _start_standin(self, step: Step) -> None:
        from tavari_dr.standin import StandIn, health_path

        self.app_database_url = None  # what the "application" was (re)started with

        def database_check() -> bool:
            import psycopg

            # No connect_timeout: psycopg enforces it with a Python deadline on the monotonic clock,
            # which libfaketime (how the suite is checked on fixed dates) moves in jumps, failing
            # healthy connections. The app's database is on loopback: a stopped cluster refuses at once.
            with psycopg.connect(self.app_database_url, options="-c statement_timeout=3000") as conn:
                return conn.execute("SELECT count(*) FROM public.businesses").fetchone()[0] > 0

        self.supabase_token = "sbp_drill_" + hashlib.sha256(os.urandom(8)).hexdigest()[:24]
        self.standin = StandIn(project_ref="drill", token=self.supabase_token,
                               pitr_enabled=self.config.verification.expect_pitr,
                               health_paths=[health_path(u) for u in self.config.drill.health_endpoints],
                               database_check=database_check).__enter__()
        step.detail = f"{self.standin.url} (emulated: stands in for the Supabase Management API and " \
                      f"{', '.join(self.config.drill.health_endpoints) or 'no health endpoint'})"

    def _seed_database(self, step: Step) -> None:
        from tavari_dr import demo_data

        self.database_url = self.primary.create_database("postgres_tavari")
        demo_data.create_supabase_like(self.database_url)
        demo_data.seed(self.database_url, businesses=self.sizes.businesses, calls=self.sizes.calls,
                       messages=self.sizes.messages)
        self.app_database_url = self.database_url
        self.baseline = fingerprints(self.database_url)
        step.detail = ", ".join(f"{t} {v['rows']}" for t, v in self.baseline.items())

    def _seed_invoices(self, step: Step) -> None:
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            self.pdf_keys = [r[0] for r in conn.execute("SELECT pdf_key FROM public.invoices ORDER BY 1")]
        s3 = self.s3()
        puts = 0
        for version in range(1, self.sizes.invoice_versions + 1):
            for key in self.pdf_keys:
                body = (f"%PDF-1.7 {key} v{version}\n".encode() + os.urandom(self.sizes.pdf_bytes))
                s3.put_object(Bucket=self.invoice_bucket, Key=key, Body=body, ContentType="application/pdf")
                puts += 1
        if self.replica_bucket:
            self._replicate()
        time.sleep(1.1)  # S3 times have a resolution of one second: T must fall after the last write
        self.bucket_t0 = datetime.now(UTC)
        self.bucket_baseline = bucket_state(s3, self.invoice_bucket)
        step.counts.requests["put"] = puts
        step.detail = f"{len(self.pdf_keys)} invoices x {self.sizes.invoice_versions} versions" + (
            f"; replicated to {self.replica_bucket} by the drill, the way CRR would (moto never replicates)"
            if self.replica_bucket else "")

    def _env_values(self, rotated: bool = False) -> dict[str, str]:
        tag = "rotated" if rotated else "initial"
        values = {
            "SUPABASE_URL": "https://drill.supabase.co",
            "SUPABASE_ANON_KEY": f"anon-{tag}-{os.urandom(6).hex()}",
            "SUPABASE_SERVICE_ROLE_KEY": f"service-{tag}-{os.urandom(6).hex()}",
            "SUPABASE_ACCESS_TOKEN": self.supabase_token,
            "BACKUP_DATABASE_URL": self.app_database_url,
            "ALERT_WEBHOOK_URL": f"{self.standin.url}/webhook",
            "SUPABASE_JWT_SECRET": f"jwt-{tag}-{os.urandom(16).hex()}",
        }
        for key in self.config.secrets.third_party_keys:
            values[key] = f"{key.lower()}-{tag}-{os.urandom(6).hex()}"
        declared = {e.name for e in self.config.secrets.all_entries}
        return {k: v for k, v in values.items() if k in declared}

    def _write_env(self, values: dict[str, str], name: str) -> Path:
        from tavari_dr.envfile import dump

        path = self.work / name
        path.write_text(dump(values))
        path.chmod(0o600)
        return path

    def _push_secrets(self, step: Step) -> None:
        self.env_values = self._env_values()
        path = self._write_env(self.env_values, "tavari.env")
        self._log(step, self.cli(step, "secrets", "push", "--env", self.config.name, "--env-file", str(path),
                                 "--apply"))

    # ------------------------------------------------------------------ jobs

    def _backup(self, step: Step) -> None:
        self._log(step, self.cli(step, "db", "backup", "--env", self.config.name, "--reason", "nightly",
                                 "--publish-metrics"))
        entry, manifest = self._latest_backup()
        self.backup_manifest = manifest
        step.counts.rows = sum(manifest.tables.values())

    def _latest_backup(self):
        from tavari_dr import db_backup

        return db_backup.find_backup(self.s3(), self.backup_bucket, "latest")

    def _versions_per_key(self, bucket: str) -> float:
        """Listing entries (versions and delete markers) per key: what a production listing scales by."""
        entries, keys = 0, set()
        for page in self.s3().get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                entries += 1
                keys.add(v["Key"])
        return entries / max(1, len(keys))

    def _replicate(self) -> None:
        if self.replica_bucket:
            emulate_crr(self.s3(), self.invoice_bucket, self.replica_bucket, self.replicated)

    def _verify(self, step: Step) -> None:
        from tavari_dr import verification

        stack = self.deployment.stacks[self.config.stack_name(outputs.DATABASE_BACKUPS)]
        results = {}
        for job in verification.JOBS:
            environment = dict(next(v for description, v in stack.functions.items()
                                    if description.endswith(f": {job}")))
            # The scheduled Lambda's own environment, as deployed; only the Management API is the stand-in.
            settings = json.loads(environment["TAVARI_VERIFICATION"])
            settings["supabase_api_url"] = self.standin.url
            environment["TAVARI_VERIFICATION"] = json.dumps(settings)
            metrics_lines = io.StringIO()  # the handlers' EMF lines, which Lambda would send to CloudWatch
            with _environ({**self.env, "AWS_PROFILE": None, "AWS_ENDPOINT_URL": self.moto.url,
                           "AWS_REGION": self.config.region,
                           "AWS_DEFAULT_REGION": self.config.region}), contextlib.redirect_stdout(metrics_lines):
                results.update(verification.handle(job, environment)["results"])
        failed = {name: status for name, status in results.items() if status != "PASS"}
        step.detail = ", ".join(f"{n} {s}" for n, s in results.items())
        self.facts["checks"] = results
        if failed:
            raise DrillFailed(f"checks failed: {failed}")

    def _verify_cli(self, step: Step) -> None:
        """The operator's `tavari-dr verify`; its cdk.json differs from the project's only in the
        Management API URL (the stand-in)."""
        context = json.loads(self.cdk_json.read_text())
        settings = context["context"]["environments"][self.config.name].setdefault("verification", {})
        settings["supabase_api_url"] = self.standin.url
        copy = self.work / "cdk.json"
        copy.write_text(json.dumps(context))
        self._log(step, self.cli(step, "verify", "--env", self.config.name, "--cdk-json", str(copy)))

    def _exports(self, step: Step) -> None:
        import zipfile

        import psycopg

        with psycopg.connect(self.database_url) as conn:
            user = str(conn.execute("SELECT owner_id FROM public.businesses ORDER BY 1 LIMIT 1").fetchone()[0])
        archive = self.work / "account.zip"
        self.cli(step, "export", "account", "--user-id", user, "--database-url", self.database_url, "--out",
                 str(archive), "--env", self.config.name)
        with zipfile.ZipFile(archive) as zf:
            metadata = json.loads(zf.read("metadata.json"))
        if metadata["user_id"] != user or not metadata["files"]["messages.jsonl"]["rows"]:
            raise DrillFailed("the account export does not hold the user's messages")
        tables = self.work / "tables"
        self.cli(step, "export", "tables", "--database-url", self.database_url, "--out", str(tables))
        manifest = json.loads((tables / "manifest.json").read_text())
        counts = {t: v["rows"] for t, v in manifest["tables"].items()}
        expected = {t: self.baseline[t]["rows"] for t in counts}
        if counts != expected:
            raise DrillFailed(f"table export counts {counts} differ from the database's {expected}")
        step.detail = (f"account {user}: {sum(f.get('rows', 0) for f in metadata['files'].values())} rows; "
                       f"{len(counts)} tables as CSV")

    def _corrupt_newest_backup(self) -> None:
        _, manifest = self._latest_backup()
        name = next(n for n in manifest.artifacts if n.startswith("data"))
        key = manifest.artifacts[name]["key"]
        self.s3().put_object(Bucket=self.backup_bucket, Key=key, Body=b"not a dump")
        self.say(f"[fault] corrupted {key} in the backup bucket")

    # ------------------------------------------------------------------ scenario 1

    def _scenario_corruption(self) -> None:
        scenario = "1 database corruption"
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            conn.execute("UPDATE public.messages SET body = 'CORRUPTED' WHERE id % 5 = 0")
            conn.execute("DELETE FROM public.invoices WHERE number LIKE '%-1'")
        incident = datetime.now(UTC)

        def identify(step: Step) -> None:
            now = fingerprints(self.database_url)
            damaged = sorted(t for t in self.baseline if now.get(t) != self.baseline[t])
            if not damaged:
                raise DrillFailed("the damage was not detected")
            step.detail = f"damaged tables: {', '.join(damaged)}"

        self.step(scenario, "identify the corruption (content hashes against the last verified state)", identify)

        def last_good(step: Step) -> None:
            output = self.cli(step, "db", "list", "--env", self.config.name)
            complete = [line.split()[0] for line in output.splitlines()[1:] if "complete" in line
                        and "INCOMPLETE" not in line]
            if not complete:
                raise DrillFailed("no complete backup")
            self.chosen_backup = complete[0]
            step.detail = f"newest complete backup: {self.chosen_backup}"

        self.step(scenario, "identify the last good backup", last_good, recovery=CRITICAL, kind="cli")
        target = self.primary.create_database("restored_s1")
        self._restore_database(scenario, target, self.chosen_backup)
        self._verify_database(scenario, target)
        self._record_rpo(scenario, incident)

    def _restore_database(self, scenario: str, target_url: str, backup: str) -> None:
        def restore(step: Step) -> None:
            self._log(step, self.cli(step, "db", "restore", "--env", self.config.name, "--backup", backup,
                                     "--target-url", target_url))
            step.counts.rows = sum(self.backup_manifest.tables.values())

        self.step(scenario, "restore the database from the off-site backup", restore, recovery=CRITICAL,
                  kind="db_restore")

    def _verify_database(self, scenario: str, url: str) -> None:
        def verify(step: Step) -> None:
            restored = fingerprints(url)
            differ = sorted(t for t in self.baseline if restored.get(t) != self.baseline[t])
            if differ:
                raise DrillFailed(f"restored tables differ from the state at the backup: {differ}")
            step.detail = f"{len(restored)} tables: row counts and content hashes equal the backed-up state"
            step.counts.rows = sum(t["rows"] for t in restored.values())

        self.step(scenario, "verify integrity (row counts and content hashes)", verify, recovery=CRITICAL,
                  kind="db_scan")

    def _record_rpo(self, scenario: str, incident: datetime) -> None:
        backed_up = datetime.fromisoformat(self.backup_manifest.started_at)
        self.facts.setdefault("rpo", {})[scenario] = {
            "incident": incident.isoformat(timespec="seconds"), "restore_point": backed_up.isoformat(
                timespec="seconds"), "data_loss_window_seconds": round((incident - backed_up).total_seconds(), 1)}

    # ------------------------------------------------------------------ scenario 3

    def _scenario_breach(self) -> None:
        scenario = "3 data breach"
        import psycopg

        s3 = self.s3()
        breach = datetime.now(UTC)
        time.sleep(1.1)
        for i, key in enumerate(self.pdf_keys):
            if i % 4 == 0:
                s3.put_object(Bucket=self.invoice_bucket, Key=key, Body=b"ransom note")
            elif i % 4 == 1:
                s3.delete_object(Bucket=self.invoice_bucket, Key=key)
        s3.put_object(Bucket=self.invoice_bucket, Key="invoices/planted.pdf", Body=b"malware")
        self._replicate()  # CRR copies the attacker's writes and deletes too
        with psycopg.connect(self.database_url) as conn:
            conn.execute("DELETE FROM public.messages WHERE id % 2 = 0")
            conn.execute("UPDATE public.businesses SET name = 'pwned'")

        def restore_bucket(step: Step) -> None:
            to = self.bucket_t0.isoformat(timespec="seconds").replace("+00:00", "Z")
            step.versions_per_key = self._versions_per_key(self.invoice_bucket)
            state_dir = self.report_dir / "bucket-restore-scenario-3"
            self._log(step, self.cli(step, "bucket", "restore", "--env", self.config.name, "--to", to, "--apply",
                                     "--concurrency", str(costmodel.BUCKET_RESTORE_CONCURRENCY),
                                     "--state-dir", str(state_dir)))
            step.toy_actions = _reported_actions(state_dir)
            self._replicate()

        self.step(scenario, "restore the invoice bucket to before the breach", restore_bucket, recovery=NON_CRITICAL,
                  kind="bucket_restore")

        self._verify_bucket(scenario, "verify the bucket equals its state before the breach", self.invoice_bucket)
        target = self.primary.create_database("restored_s3")
        self._restore_database(scenario, target, self.chosen_backup)
        self._verify_database(scenario, target)

        def rotate(step: Step) -> None:
            self.app_database_url = target
            self.env_values = self._env_values(rotated=True)
            path = self._write_env(self.env_values, "rotated.env")
            self.cli(step, "secrets", "push", "--env", self.config.name, "--env-file", str(path), "--apply")
            self._log(step, self.cli(step, "secrets", "check", "--env", self.config.name))

        self.step(scenario, "rotate every key and point the app at the restored database", rotate,
                  recovery=CRITICAL, kind="cli")
        self._verify_health(scenario)
        self._record_rpo(scenario, breach)

    def _verify_bucket(self, scenario: str, name: str, bucket: str) -> None:
        def verify(step: Step) -> None:
            state = bucket_state(self.counted_s3(step), bucket)
            if state != self.bucket_baseline:
                raise DrillFailed(f"{bucket} differs from the state at the restore point: "
                                  + state_difference(state, self.bucket_baseline))
            step.detail = f"{len(state)} visible objects equal the state at the restore point"

        self.step(scenario, name, verify, recovery=NON_CRITICAL, kind="bucket_verify")

    def _verify_health(self, scenario: str, *, attempts: int = 10) -> None:
        def health(step: Step) -> None:
            answered = []
            for endpoint in self.config.drill.health_endpoints:
                url = self.standin.local_url(endpoint)
                # Services come back within seconds of a restart: poll, as an operator's check would,
                # and say what the last refusal was if they never do.
                for attempt in range(1, attempts + 1):
                    try:
                        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                            answered.append(f"{endpoint} (emulated: stand-in {url}) {response.status}")
                            break
                    except urllib.error.HTTPError as err:
                        if attempt == attempts:
                            raise DrillFailed(f"{endpoint} (emulated: stand-in {url}) answered {err.code} "
                                              f"{err.read()[:200].decode(errors='replace')} {attempts} times") from None
                        time.sleep(1)
            step.detail = "; ".join(answered) or "no health endpoints configured"
            step.counts.requests["api"] = len(answered)

        self.step(scenario, "verify health endpoints", health, recovery=CRITICAL, kind="health")

    # ------------------------------------------------------------------ scenario 2

    def _scenario_total_failure(self) -> None:
        from tavari_dr.pgcluster import LocalPostgres

        scenario = "2 complete system failure"
        s3 = self.s3()
        incident = datetime.now(UTC)
        self.primary.stop()  # the database is gone, cluster and all
        lost_bucket = self.invoice_bucket
        # The bucket is gone, every version with it, in every environment: what survives is only what
        # the configuration keeps elsewhere (the DR replica, where replication is on).
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=lost_bucket):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                s3.delete_object(Bucket=lost_bucket, Key=v["Key"], VersionId=v["VersionId"],
                                 BypassGovernanceRetention=True)
        s3.delete_bucket(Bucket=lost_bucket)
        source = self.replica_bucket

        def provision(step: Step) -> None:
            self.secondary = LocalPostgres().start()
            self.new_database = self.secondary.create_database("postgres_tavari")
            self.new_bucket = f"tavari-{self.config.name}-recovered-{int(time.time())}"
            counted = self.counted_s3(step)
            counted.create_bucket(Bucket=self.new_bucket, CreateBucketConfiguration={
                "LocationConstraint": self.config.region})
            counted.put_bucket_versioning(Bucket=self.new_bucket, VersioningConfiguration={"Status": "Enabled"})
            step.detail = f"new PostgreSQL cluster on port {self.secondary.port}; bucket {self.new_bucket}"

        self.step(scenario, "provision new infrastructure (database cluster, bucket)", provision, recovery=CRITICAL,
                  kind="provision")

        def config(step: Step) -> None:
            from tavari_dr.envfile import parse

            out = self.work / "recovered.env"
            args = ["secrets", "pull", "--env", self.config.name, "--out", str(out), "--force"]
            self.cli(step, *args)
            recovered = parse(out.read_text())
            if recovered != self.env_values:
                raise DrillFailed("the pulled configuration differs from what was pushed")
            step.detail = f"{len(recovered)} entries recovered from Secrets Manager"

        self.step(scenario, "recover the configuration from Secrets Manager", config, recovery=CRITICAL, kind="cli")
        self._restore_database(scenario, self.new_database, self.chosen_backup)
        self._verify_database(scenario, self.new_database)

        def restore_bucket(step: Step) -> None:
            if source is None:
                raise DrillFailed(f"the invoice bucket cannot be recovered: it is gone with every version, and "
                                  f"{self.config.name} keeps no replica (replication.enabled is false)")
            to = self.bucket_t0.isoformat(timespec="seconds").replace("+00:00", "Z")
            state_dir = self.report_dir / "bucket-restore-scenario-2"
            step.versions_per_key = self._versions_per_key(source)
            self._log(step, self.cli(step, "bucket", "restore", "--env", self.config.name, "--bucket", source, "--to",
                                     to, "--target-bucket", self.new_bucket, "--apply", "--concurrency",
                                     str(costmodel.BUCKET_RESTORE_CONCURRENCY), "--state-dir", str(state_dir)))
            step.toy_actions = _reported_actions(state_dir)
            step.detail = f"from the DR replica {source} into {self.new_bucket}"

        self.step(scenario, "restore the invoice bucket into a new bucket", restore_bucket, recovery=NON_CRITICAL,
                  kind="bucket_restore_new")

        self._verify_bucket(scenario, "verify the new bucket's visible state", self.new_bucket)

        def update_config(step: Step) -> None:
            self.app_database_url = self.new_database
            self.env_values = {**self.env_values, "BACKUP_DATABASE_URL": self.new_database}
            path = self._write_env(self.env_values, "recovered-updated.env")
            self.cli(step, "secrets", "push", "--env", self.config.name, "--env-file", str(path), "--apply")
            self._log(step, self.cli(step, "secrets", "check", "--env", self.config.name))

        self.step(scenario, "update connection strings, restart services", update_config, recovery=CRITICAL,
                  kind="cli")
        self._verify_health(scenario)
        self._record_rpo(scenario, incident)

    # ------------------------------------------------------------------ report

    def _production(self, versions_per_key: float = 0.0) -> costmodel.Production:
        """Production sizes; a bucket's history is as deep per key as the toy bucket the step listed
        (the drill writes several versions of every invoice, so this errs on the long side)."""
        d = self.config.drill
        return costmodel.Production(
            dump_bytes=d.database_gb * 1e9, invoice_count=d.invoice_count, invoice_bytes=d.invoice_gb * 1e9,
            breach_changed_share=d.breach_changed_percent / 100,
            versions_per_key=versions_per_key or float(self.sizes.invoice_versions))

    def _model(self, calibration: costmodel.Calibration) -> None:
        """Price every recovery step's counts at the production sizes (tavari_dr.costmodel)."""
        archived = self.config.invoice_bucket.archive_storage_class
        for step in self.steps:
            if step.recovery is None or step.kind is None:
                continue
            production = self._production(step.versions_per_key)
            estimate = self._estimate(step, production, calibration)
            step.model = {**estimate.to_json(), "archive_storage_class": archived}
            step.projected_seconds = round(estimate.seconds, 1)

    def _estimate(self, step: Step, production: costmodel.Production,
                  calibration: costmodel.Calibration) -> costmodel.Estimate:
        """The cost model's formula for the step's kind."""
        match step.kind:
            case "cli":
                return costmodel.cli_steps(step.counts, calibration)
            case "provision":
                return costmodel.provision(step.counts, calibration)
            case "db_restore":
                return costmodel.database_restore(step.counts, production, calibration)
            case "db_scan":
                return costmodel.database_scan(production, calibration)
            case "bucket_restore" | "bucket_restore_new":
                # The state at T of a breach or a loss is recent: its versions are current, never archived
                # (noncurrent versions move to the archive class only after archive_after_days).
                return costmodel.bucket_restore(step.counts, step.toy_actions, production, calibration,
                                                into_new_bucket=step.kind == "bucket_restore_new")
            case "bucket_verify":
                return costmodel.bucket_verify(step.counts, production)
            case "health":
                return costmodel.health(len(self.config.drill.health_endpoints))
        raise ValueError(f"no cost model for step kind {step.kind!r}")

    def _rpo_worst_case(self, calibration: costmodel.Calibration) -> dict[str, Any]:
        """The most data the deployed configuration can lose: the longest gap between two scheduled
        dumps (DST included), plus a dump's duration (a dump that is under way when disaster strikes
        is not usable yet), plus the replication lag objective where the backup may come from the
        DR replica."""
        db = self.config.database_backups
        year = self.started.year
        # The loader refuses a dump schedule whose gaps cannot be computed, so this does not raise.
        interval = schedule.max_interval_seconds(db.schedule, db.timezone, year=year)
        duration = costmodel.database_backup(self._production(), calibration)
        lag = self.config.monitoring.replication_latency_seconds if self.config.replication.enabled else 0
        worst = interval + duration.seconds + lag
        objective = self.config.monitoring.rpo_hours * 3600
        return {"schedule": db.schedule, "timezone": db.timezone, "year": year,
                "longest_interval_seconds": interval, "backup_duration_seconds": round(duration.seconds, 1),
                "backup_duration_model": duration.to_json(), "replication_lag_objective_seconds": lag,
                "worst_case_seconds": round(worst, 1), "objective_seconds": objective, "met": worst <= objective}

    def _report(self, error: str | None) -> dict[str, Any]:
        calibration = costmodel.load_calibration()
        self._model(calibration)
        d = self.config.drill
        objectives = {CRITICAL: d.rto_critical_minutes * 60, NON_CRITICAL: d.rto_non_critical_minutes * 60}
        scenarios: dict[str, Any] = {}
        for step in self.steps:
            if step.scenario[0].isdigit():
                scenarios.setdefault(step.scenario, {"steps": []})["steps"].append(step)
        scenarios = dict(sorted(scenarios.items()))  # the plan's order, whatever order they were played in
        worst = self._rpo_worst_case(calibration)
        verdicts: list[bool] = [worst["met"]]
        missed: list[str] = [] if worst["met"] else [
            f"RPO: the configuration allows {worst['worst_case_seconds'] / 3600:.1f} h of data loss (longest gap "
            f"between dumps {worst['longest_interval_seconds'] / 3600:.1f} h + a dump + replication lag), over the "
            f"objective of {worst['objective_seconds'] / 3600:.0f} h"]
        for name, data in scenarios.items():
            for kind, limit in objectives.items():
                # Critical services must be back within the critical RTO; everything within the non-critical one.
                counted = [s for s in data["steps"] if s.recovery == kind or (kind == NON_CRITICAL and s.recovery)]
                measured = sum(s.seconds for s in counted)
                projected = sum(s.projected_seconds or 0 for s in counted)
                data[f"rto_{kind}"] = {"measured_seconds": round(measured, 1), "projected_seconds": round(projected, 1),
                                       "objective_seconds": limit, "met": projected <= limit}
                verdicts.append(data[f"rto_{kind}"]["met"])
                if not data[f"rto_{kind}"]["met"]:
                    missed.append(f"{name}: projected RTO ({kind}) {projected / 60:.1f} min is over the "
                                  f"objective of {limit / 60:.0f} min")
            achieved = self.facts.get("rpo", {}).get(name)
            if achieved:
                objective = self.config.monitoring.rpo_hours * 3600
                data["rpo"] = {**achieved, "objective_seconds": objective,
                               "worst_case_seconds": worst["worst_case_seconds"],
                               "met": achieved["data_loss_window_seconds"] <= objective and worst["met"]}
                verdicts.append(data["rpo"]["met"])
        failed_steps = [f"{s.scenario}: {s.name}: {s.detail}" for s in self.steps if not s.ok]
        expected = {"1 database corruption", "2 complete system failure", "3 data breach"}
        missing = sorted(expected - set(scenarios)) if not failed_steps else []
        ok = error is None and not failed_steps and all(verdicts) and not missing
        finished = datetime.now(UTC)
        standin = getattr(self, "standin", None)
        report = {
            "schema_version": SCHEMA_VERSION, "kind": "local", "emulated": True,
            "title": f"Disaster-recovery drill (emulated: moto + local PostgreSQL) — {self.config.name}: "
                     f"{'PASSED' if ok else 'FAILED'}",
            "environment": self.config.name, "started": self.started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"), "passed": ok, "error": error,
            # The code that ran: the checkout tavari_dr was imported from (not the config's folder).
            "evidence": {**evidence.git_state(Path(__file__).resolve().parent.parent),
                         # (no server version where the drill stopped before its cluster started)
                         "versions": getattr(self, "versions", None) or evidence.versions(local=True),
                         "host": evidence.host(), "operator": self.operator,
                         "commands": [c for st in self.steps for c in st.commands]},
            "objectives": {"rto_critical_seconds": objectives[CRITICAL],
                           "rto_non_critical_seconds": objectives[NON_CRITICAL],
                           "rpo_seconds": self.config.monitoring.rpo_hours * 3600},
            "production_sizes": {"database_gb": d.database_gb, "invoice_count": d.invoice_count,
                                 "invoice_gb": d.invoice_gb, "breach_changed_percent": d.breach_changed_percent},
            "toy_sizes": asdict(self.sizes),
            "model": {"module": "tavari_dr.costmodel", "calibration": calibration.source,
                      "constants": costmodel.constants()},
            "rpo_worst_case": worst,
            "steps": [_step_json(s) for s in self.steps],
            "scenarios": {n: {k: ([_step_json(s) for s in v] if k == "steps" else v) for k, v in data.items()}
                          for n, data in scenarios.items()},
            "checks": self.facts.get("checks", {}),
            "stand_ins": ([{"emulated": True, "url": standin.url, "stands_for": ["Supabase Management API",
                                                                              *self.config.drill.health_endpoints]}]
                          if standin else []),
            "deployment": self.deployment.to_json() if getattr(self, "deployment", None) else None,
            "failures": failed_steps + ([error] if error and not failed_steps else []) + missed,
            "notes": ["Emulated: AWS is a moto server on this machine, Supabase a throwaway PostgreSQL cluster and "
                      "a loopback stand-in; nothing here touched a real account.",
                      "moto never replicates: the drill copied the invoice bucket's versions to the replica "
                      "itself, the way CRR would." if getattr(self, "replica_bucket", None) else
                      "No replica in this environment: a lost invoice bucket cannot be recovered.",
                      "Projected RTO: each recovery step's counted requests, bytes and commands, scaled to the "
                      "production sizes by what drives them and priced by tavari_dr.costmodel (S3's documented "
                      "latency, throughput and request limits; PostgreSQL rates from the committed calibration). "
                      "Measured seconds are this machine's wall time and decide nothing.",
                      "RPO: the drill takes its backup minutes before each incident, so its data-loss window "
                      "measures the drill's timing; the worst case the schedule allows is judged too."],
        }
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / "drill-report.json").write_text(json.dumps(report, indent=1, default=str))
        (self.report_dir / "drill-report.md").write_text(markdown(report))
        # Sealed: exactly the files this run wrote (never whatever else lies in the folder).
        written = [self.report_dir / "drill-report.json", self.report_dir / "drill-report.md",
                   *sorted(p for d in self.report_dir.glob("bucket-restore-scenario-*") for p in d.rglob("*")
                           if p.is_file())]
        evidence.seal(self.report_dir, written)
        return report


def _step_json(step: Step) -> dict[str, Any]:
    return {**asdict(step), "counts": step.counts.to_json()}


def _reported_actions(state_dir: Path) -> int:
    """Actions in a bucket restore's per-key report (one JSON line each)."""
    return sum(len(path.read_text().splitlines()) for path in state_dir.glob("*.report.jsonl"))


class _environ:
    """Set (or, for None, unset) environment variables for the in-process jobs, and put them back."""

    def __init__(self, values: dict[str, str | None]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _inputs(model: dict[str, Any] | None) -> str:
    if not model:
        return ""
    parts = ", ".join(f"{k} {v:.1f} s" for k, v in model["parts"].items())
    return f"{parts} ({model['formula']})".replace("|", "/")


def markdown(report: dict[str, Any]) -> str:
    ev = report["evidence"]
    lines = [f"# {report['title']}", "",
             f"{report['started']} → {report['finished']} (UTC), operator {ev['operator']}, host "
             f"{ev['host']['name']} ({ev['host']['cpus']} CPUs). Commit {ev.get('commit') or 'unknown'}"
             + (" (work tree dirty)" if ev.get("dirty") else "") + ". Versions: "
             + ", ".join(f"{k} {v}" for k, v in ev["versions"].items() if v) + ".", "",
             f"Objectives: RTO critical {_minutes(report['objectives']['rto_critical_seconds'])}, non-critical "
             f"{_minutes(report['objectives']['rto_non_critical_seconds'])}, RPO "
             f"{_minutes(report['objectives']['rpo_seconds'])}. Judged at production sizes: "
             f"{report['production_sizes']['database_gb']} GB dump, {report['production_sizes']['invoice_count']}"
             f" invoices ({report['production_sizes']['invoice_gb']} GB), a breach changing "
             f"{report['production_sizes']['breach_changed_percent']} % of them.", ""]
    if report["failures"]:
        lines += ["## Failures", "", *[f"- {f}" for f in report["failures"]], ""]
    worst = report["rpo_worst_case"]
    lines += ["## Scenarios", "", "| scenario | RTO critical (projected / objective) | RTO all (projected / objective) "
              "| wall time here (not judged) | RPO in the drill / worst case / objective | verdict |",
              "|---|---|---|---|---|---|"]
    for name, data in report["scenarios"].items():
        c, n, rpo = data.get("rto_critical"), data.get("rto_non-critical"), data.get("rpo")
        verdict = all(x["met"] for x in (c, n, rpo) if x)
        lines.append(f"| {name} | {_minutes(c['projected_seconds'])} / {_minutes(c['objective_seconds'])} | "
                     f"{_minutes(n['projected_seconds'])} / {_minutes(n['objective_seconds'])} | "
                     f"{_minutes(n['measured_seconds'])} | "
                     + (f"{_minutes(rpo['data_loss_window_seconds'])} / {_minutes(rpo['worst_case_seconds'])} / "
                        f"{_minutes(rpo['objective_seconds'])}" if rpo else "-")
                     + f" | {'met' if verdict else 'MISSED'} |")
    lines += ["", f"Worst-case RPO the configuration allows: {_minutes(worst['worst_case_seconds'])} = longest gap "
              f"between `{worst['schedule']}` runs in {worst['timezone']} "
              f"({_minutes(worst['longest_interval_seconds'])}) + one dump "
              f"({_minutes(worst['backup_duration_seconds'])}) + replication lag objective "
              f"({_minutes(worst['replication_lag_objective_seconds'])}): {'met' if worst['met'] else 'MISSED'}.", "",
              "## Steps", "", "| scenario | step | ok | wall s | projected | requests | model | command | detail |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in report["steps"]:
        projected = _minutes(s["projected_seconds"]) if s["projected_seconds"] is not None else ""
        requests = ", ".join(f"{k} {v}" for k, v in s["counts"]["requests"].items())
        command = "<br>".join(f"`{c}`" for c in s["commands"])
        detail = s["detail"].replace("|", "\\|")[:300]
        lines.append(f"| {s['scenario']} | {s['name']} | {'yes' if s['ok'] else 'NO'} | {s['seconds']:.1f} | "
                     f"{projected} | {requests} | {_inputs(s['model'])} | {command} | {detail} |")
    for standin in report["stand_ins"]:
        lines += ["", f"Stand-in (emulated): {standin['url']} answers for {', '.join(standin['stands_for'])}."]
    deployment = report.get("deployment")
    if deployment:
        lines += ["", "## Deployment into the emulator", "",
                  "moto's CloudFormation would have ignored (asked of moto at run time; applied here by the local "
                  "deployer where the drill needs it):", ""]
        ignored = sorted({i for st in deployment["stacks"].values() for i in st["moto_would_ignore"]})
        lines += [f"- `{i}`" for i in ignored]
        lines += ["", "Not applied (and why):", ""]
        reasons: dict[str, set[str]] = {}
        for st in deployment["stacks"].values():
            for item in st["not_applied"]:
                reasons.setdefault(f"{item['type']} — {item['reason']}", set()).add(item["logical_id"])
        lines += [f"- {k} ({len(v)})" for k, v in sorted(reasons.items())]
    calibration = report["model"]["calibration"]
    lines += ["", "## Cost model", "", f"`{report['model']['module']}`; PostgreSQL rates calibrated by "
              f"`{calibration.get('command')}` on {calibration.get('host', {}).get('name')} at "
              f"{calibration.get('date')}.",
              "", *[f"- {k}: {v}" for k, v in report["model"]["constants"].items()]]
    lines += ["", "## Notes", "", *[f"- {n}" for n in report["notes"]], ""]
    return "\n".join(lines)
