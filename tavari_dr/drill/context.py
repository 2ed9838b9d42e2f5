"""The drill's context: one object, built once by setup and handed to every job and scenario.

It carries what the run was asked (environment, sizes, where the report goes), what it records
(steps with their counted requests, facts for the verdict), the services setup started (the AWS
emulator, PostgreSQL, the Supabase stand-ins, the deployed app) and the data setup seeded. Its
methods are how a scenario acts: ``step`` (timed, recorded, fails the drill), ``cli``/``cli_json``
(a `tavari-dr` command in its own process, as an operator types it) and S3 clients.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tavari_dr.core.aws import REQUEST_COUNTS_ENV, RequestCounter
from tavari_dr.core.config import EnvironmentConfig
from tavari_dr.core.costmodel import Counts
from tavari_dr.core.envfile import dump
from tavari_dr.drill.state import emulate_crr

CRITICAL, NON_CRITICAL = "critical", "non-critical"
FAULTS = ("corrupt-backup",)
# How the cost model prices a step (tavari_dr.drill.judge.price).
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


@dataclass
class Drill:
    """What every job and scenario is handed (see the module docstring). Fields below the services are
    set by setup (tavari_dr.drill.setup) and, where a scenario says so, by the scenarios."""

    config: EnvironmentConfig
    sizes: Sizes
    cdk_json: Path  # every command the drill starts reads this file
    report_dir: Path
    work: Path  # emulator log, env files, request counts: kept when the drill fails
    say: Callable[[str], None]
    steps: list[Step]
    facts: dict[str, Any]  # what the verdict needs beyond the steps: rpo per scenario, checks
    # The services setup started.
    moto: Any
    primary: Any  # the PostgreSQL cluster standing in for Supabase's database
    deployer: Any
    env: dict[str, str]  # what every command the drill starts is pointed at the emulator with
    versions: dict[str, str | None]
    services: contextlib.ExitStack  # stops the emulator, the clusters and the stand-ins when the drill ends
    deployment: Any = None
    standin: Any = None
    # The deployed app's buckets, from its outputs.
    invoice_bucket: str = ""
    backup_bucket: str = ""
    reports_bucket: str = ""
    signing_key: str = ""  # the backup manifests' signing key (its ARN)
    change_signing_key: str = ""  # the change log's (the capture's) signing key (its ARN)
    replica_bucket: str | None = None
    replicated: set[tuple[str, str]] = field(default_factory=set)  # (key, version) the emulated CRR copied
    # The seeded data and the state it is judged against.
    supabase_token: str = ""
    database_url: str = ""  # the database the capture reads (after a recovery: the recovered one)
    capture_source: str | None = None  # its change log's source tag (read while it is up: it may die later)
    app_database_url: str | None = None  # what the "application" was (re)started with
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)  # table -> rows and content hash
    pdf_keys: list[str] = field(default_factory=list)
    bucket_t0: datetime | None = None  # the restore point of the invoice bucket
    bucket_baseline: dict[str, str] = field(default_factory=dict)  # visible key -> sha256 at bucket_t0
    env_values: dict[str, str] = field(default_factory=dict)  # the configuration last pushed
    backup_manifest: Any = None  # the nightly backup's manifest
    chosen_backup: str = ""  # the last good backup, as scenario 1 identified it
    _counts_files: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------ steps

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

    # ------------------------------------------------------------------ commands

    def subprocess_env(self) -> dict[str, str]:
        """The environment of every process the drill starts: the caller's, pointed at the emulator,
        without an AWS profile (which would win over the emulator's credentials). The caller's own
        environment is never changed."""
        return {**{k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}, **self.env}

    def cli(self, step: Step, *args: str) -> str:
        """Run `tavari-dr ARGS` as its own process against the emulator, as an operator would; what it
        asked of AWS is added to the step's counts. Returns what it printed (stdout and stderr)."""
        result = self._run(step, args)
        return (result.stdout + result.stderr).strip()

    def cli_json(self, step: Step, *args: str) -> Any:
        """`tavari-dr ARGS --format json`, as cli() runs it: the command's answer (the envelope's result)."""
        return json.loads(self._run(step, (*args, "--format", "json")).stdout)["result"]

    def _run(self, step: Step, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        if "--env" in args and "--cdk-json" not in args:
            args = (*args, "--cdk-json", str(self.cdk_json))
        command = "tavari-dr " + " ".join(shlex.quote(a) for a in args)
        step.commands.append(command)
        step.command = "; ".join(step.commands)
        counts_file = self.work / f"requests-{next(self._counts_files)}.json"
        result = subprocess.run([sys.executable, "-m", "tavari_dr", *args],
                                env={**self.subprocess_env(), REQUEST_COUNTS_ENV: str(counts_file)},
                                capture_output=True, text=True, timeout=600, cwd=self.cdk_json.parent)
        if counts_file.exists():
            step.counts.add(Counts.from_json(json.loads(counts_file.read_text())))
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise DrillFailed(f"`{command}` exited {result.returncode}: {output[-600:]}")
        return result

    def log(self, step: Step, output: str) -> None:
        """The summary line of a command that answers in text only (its last line that is not a progress bar)."""
        lines = [line for line in output.splitlines() if line.strip() and "\r" not in line
                 and not line.lstrip().startswith(("restoring", "["))]
        step.detail = lines[-1].strip() if lines else ""

    def write_env(self, values: dict[str, str], name: str) -> Path:
        path = self.work / name
        path.write_text(dump(values))
        path.chmod(0o600)
        return path

    # ------------------------------------------------------------------ S3

    def s3(self, dr: bool = False) -> Any:
        return self.deployer.client("s3", self.config.replication.region if dr else self.config.region)

    def counted_s3(self, step: Step) -> Any:
        """An S3 client of the drill's own whose requests count towards ``step``."""
        from tavari_dr.core import aws

        counter = RequestCounter()
        counter.counts = step.counts
        return counter.attach(aws.client(
            "s3", region=self.config.region, endpoint_url=self.moto.url, aws_access_key_id="drill",
            aws_secret_access_key="drill"))  # noqa: S106 - the emulator's throwaway keys

    def replicate(self) -> None:
        """What CRR would have copied by now (moto never replicates)."""
        if self.replica_bucket:
            emulate_crr(self.s3(), self.invoice_bucket, self.replica_bucket, self.replicated)


class environ:  # noqa: N801 - used like os.environ, as a context manager
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
