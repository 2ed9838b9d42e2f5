"""The plan's three disaster scenarios, one function each, played on the context setup built.

Each breaks something the way the incident would, then recovers with the runbooks' `tavari-dr`
commands, step by step; a step that counts towards an RTO says which (critical, non-critical) and
how the cost model prices it (its kind). The steps every recovery shares — restore and verify the
database, verify a bucket, the health endpoints, the RPO achieved — are the functions at the end.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3

from tavari_dr.core import costmodel
from tavari_dr.drill import capture
from tavari_dr.drill.context import CRITICAL, NON_CRITICAL, Drill, DrillFailed, Step
from tavari_dr.drill.jobs import secrets_check
from tavari_dr.drill.setup import env_values
from tavari_dr.drill.state import bucket_state, fingerprints, reported_actions, state_difference


def database_corruption(d: Drill) -> None:
    """1: rows overwritten and deleted; restore the last good backup into a new database."""
    scenario = "1 database corruption"
    import psycopg

    # Changes after the nightly dump, which only the change log holds; then the state a second before the damage.
    with psycopg.connect(d.database_url) as conn:
        conn.execute("INSERT INTO public.messages (business_id, direction, body, sent_at) "
                     "SELECT id, 'in', 'after the nightly dump', now() FROM public.businesses")
        conn.execute("UPDATE public.support_tickets SET status = 'closed' WHERE id % 2 = 0")
    time.sleep(1.1)
    before = fingerprints(d.database_url)
    time.sleep(1.1)
    incident = datetime.now(UTC)
    with psycopg.connect(d.database_url) as conn:
        conn.execute("UPDATE public.messages SET body = 'CORRUPTED' WHERE id % 5 = 0")
        conn.execute("DELETE FROM public.invoices WHERE number LIKE '%-1'")
    point = capture.second_before(incident)

    def identify(step: Step) -> None:
        now = fingerprints(d.database_url)
        damaged = sorted(t for t in d.baseline if now.get(t) != d.baseline[t])
        if not damaged:
            raise DrillFailed("the damage was not detected")
        step.detail = f"damaged tables: {', '.join(damaged)}"

    d.step(scenario, "identify the corruption (content hashes against the last verified state)", identify)

    def last_good(step: Step) -> None:
        backups = d.cli_json(step, "db", "list", "--env", d.config.name)["backups"]
        # A pre-restore copy is of a restore's target, not of the source: never the last good backup.
        complete = [b["backup_id"] for b in backups if b["complete"] and not b["pre_restore"]]
        if not complete:
            raise DrillFailed("no complete backup")
        d.chosen_backup = complete[0]
        step.detail = f"newest complete backup: {d.chosen_backup}"

    d.step(scenario, "identify the last good backup", last_good, recovery=CRITICAL, kind="cli")
    target = d.primary.create_database("restored_s1")
    restore_database(d, scenario, target, d.chosen_backup, to=point)
    verify_database(d, scenario, target, expected=before)
    record_rpo(d, scenario, incident, restore_point=point)

    def partial(step: Step) -> None:
        """The runbook's first move when a few tables are damaged: copies beside the live ones."""
        damaged = ["public.messages", "public.invoices"]
        created = capture.server_now(d.database_url)  # the copies' tables are created after this
        d.log(step, d.cli(step, "db", "restore", "--env", d.config.name, "--backup", d.chosen_backup, "--target-url",
                          d.database_url, *(x for t in damaged for x in ("--table", t))))
        with psycopg.connect(d.database_url, autocommit=True) as conn:
            (schema,) = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'restored\\_%'").fetchone()
        copies = {f"public.{t.split('.', 1)[1]}": v for t, v in fingerprints(d.database_url, schema).items()}
        wrong = [t for t in damaged if copies.get(t) != d.baseline[t]]
        if wrong:
            raise DrillFailed(f"the restored copies differ from the backed-up state: {wrong}")
        listed = d.cli(step, "db", "cleanup-restored", "--env", d.config.name, "--database-url", d.database_url,
                       "--dry-run")
        if listed.count(f"kept {schema}.") != len(damaged):
            raise DrillFailed(f"cleanup-restored does not see the copies: {listed[-300:]}")
        # The copies are tables in the live database: the capture notices them within a segment, publishes them
        # and starts a new base with a fresh dump (ChangeCoverageGap); their DROP is a schema change, another
        # base and dump. Each waited for, so no later scenario restores into the seconds between.
        fresh = [capture.wait_restorable(d, after=created)]
        with psycopg.connect(d.database_url, autocommit=True) as conn:  # the operator's DROP once compared
            conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))
            dropped = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        fresh.append(capture.wait_restorable(d, after=dropped))
        step.detail = (f"{', '.join(damaged)} copied into {schema} equal the backed-up state; the capture's new bases "
                       f"and fresh dumps for the copies and their drop: {', '.join(fresh)}")

    # Not on the RTO's path (the whole database was restored above): the way to mend a few tables in place.
    d.step(scenario, "copy the damaged tables beside the live ones (db restore --table)", partial)


def data_breach(d: Drill) -> None:
    """3: invoices overwritten, deleted and planted (and replicated), rows deleted; restore the bucket in
    place to before the breach and the database from the backup, rotate every key."""
    scenario = "3 data breach"
    import psycopg

    s3 = d.s3()
    capture.wait_restorable(d)  # scenario 1's partial restore reset the capture's base: its fresh dump first
    messages_before = _messages_per_business(d.database_url)  # what the breach scope's check is judged against
    before = fingerprints(d.database_url)  # the database a second before the breach reaches it
    breach = datetime.now(UTC)
    time.sleep(1.1)
    requests = []  # what S3's server access logs would record of them (moto delivers none)
    for i, key in enumerate(d.pdf_keys):
        if i % 4 == 0:
            s3.put_object(Bucket=d.invoice_bucket, Key=key, Body=b"ransom note")
            requests.append((datetime.now(UTC), "put", key))
        elif i % 4 == 1:
            s3.delete_object(Bucket=d.invoice_bucket, Key=key)
            requests.append((datetime.now(UTC), "delete", key))
        elif i % 4 == 2:
            s3.get_object(Bucket=d.invoice_bucket, Key=key)["Body"].read()  # exfiltrated: no trace in the data
            requests.append((datetime.now(UTC), "get", key))
    s3.put_object(Bucket=d.invoice_bucket, Key="invoices/planted.pdf", Body=b"malware")
    d.replicate()  # CRR copies the attacker's writes and deletes too
    point = capture.second_before(datetime.now(UTC))
    damaged = datetime.now(UTC)  # the database's incident (the invoices' began at `breach`): after the point
    with psycopg.connect(d.database_url) as conn:
        conn.execute("DELETE FROM public.messages WHERE id % 2 = 0")
        conn.execute("UPDATE public.businesses SET name = 'pwned'")
    # moto gives whole-second times and lists every version before every delete marker: a restore's
    # copy in the second of the attacker's delete could not be ordered against it when the restore
    # checks its work, and would rightly be reported, not guessed. An operator restores minutes later.
    time.sleep(1.1)
    scope_breach(d, scenario, breach, requests, messages_before)

    def restore_bucket(step: Step) -> None:
        step.versions_per_key = _versions_per_key(d, d.invoice_bucket)
        state_dir = d.report_dir / "bucket-restore-scenario-3"
        _restored(step, d.cli_json(step, "bucket", "restore", "--env", d.config.name, "--to", _restore_point(d),
                                   "--apply", "--concurrency", str(costmodel.BUCKET_RESTORE_CONCURRENCY),
                                   "--state-dir", str(state_dir)))
        step.toy_actions = reported_actions(state_dir)
        d.replicate()

    d.step(scenario, "restore the invoice bucket to before the breach", restore_bucket, recovery=NON_CRITICAL,
           kind="bucket_restore")
    verify_bucket(d, scenario, "verify the bucket equals its state before the breach", d.invoice_bucket)
    target = d.primary.create_database("restored_s3")
    restore_database(d, scenario, target, d.chosen_backup, to=point)
    verify_database(d, scenario, target, expected=before)

    def rotate(step: Step) -> None:
        d.app_database_url = target
        d.env_values = env_values(d, rotated=True)
        path = d.write_env(d.env_values, "rotated.env")
        d.cli(step, "secrets", "push", "--env", d.config.name, "--env-file", str(path), "--apply")
        secrets_check(d, step)

    d.step(scenario, "rotate every key and point the app at the restored database", rotate, recovery=CRITICAL,
           kind="cli")
    verify_health(d, scenario)
    record_rpo(d, scenario, damaged, restore_point=point)


def _messages_per_business(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT business_id::text, count(*) FROM public.messages GROUP BY 1").fetchall())


def scope_breach(d: Drill, scenario: str, breach: datetime, requests: list[tuple[datetime, str, str]],
                 before: dict[str, int]) -> None:
    """`tavari-dr breach scope` right after the breach, on the breached database: it must name exactly the
    accounts the breach touched — whose rows it changed or deleted, whose invoices it read or wrote."""
    import csv
    import io

    import psycopg

    from tavari_dr.drill.access_logs import deliver

    deliver(d.s3(), d.invoice_bucket, requests)

    def scope(step: Step) -> None:
        # As an operator scopes it: once the change log holds the breach, so the state at T is exact.
        capture.wait_logged_past(d, breach)
        out = d.work / "breach-scope"
        answer = d.cli_json(step, "breach", "scope", "--env", d.config.name, "--since",
                            breach.isoformat(), "--database-url", d.database_url, "--out", str(out),
                            "--force")
        with psycopg.connect(d.database_url) as conn:
            owner: dict[str, str] = dict(
                conn.execute("SELECT id::text, owner_id::text FROM public.businesses").fetchall())
            renamed = {r[0] for r in conn.execute("SELECT owner_id::text FROM public.businesses WHERE name = 'pwned'")}
        messages = _messages_per_business(d.database_url)
        lost = {owner[b] for b, n in before.items() if messages.get(b, 0) < n}
        objects = {owner[k.split("/")[1]] for _, _, k in requests}
        expected = renamed | lost | objects
        rows = list(csv.DictReader(io.StringIO((out / "accounts.csv").read_text())))
        named = {r["account_id"] for r in rows}
        if named != expected:
            raise DrillFailed(f"breach scope named {len(named)} account(s), the breach touched {len(expected)}: "
                              f"{sorted(named ^ expected)[:3]} differ")
        # (scenario 1's corruption of this same database, after the backup, is in the diff too: the scope says
        # so; the breach's own deletions are the messages')
        deleted = sum(answer["tables"]["public.messages"]["deleted"].values())
        if deleted != sum(before.values()) - sum(messages.values()):
            raise DrillFailed(f"breach scope counts {deleted} deleted row(s), the breach deleted "
                              f"{sum(before.values()) - sum(messages.values())}")
        reads = sum(int(r["objects_read"]) for r in rows)
        if reads != sum(1 for _, action, _ in requests if action == "get"):
            raise DrillFailed(f"breach scope counts {reads} object read(s) of the {len(requests)} requests logged")
        unread = answer["sources_not_read"]
        step.detail = (f"{len(named)} account(s) named, as touched ({deleted} messages deleted, {reads} invoices "
                       f"read); sources not read: {', '.join(unread) or 'none'}")

    d.step(scenario, "scope the breach: accounts touched, from the data and the logs (tavari-dr breach scope)",
           scope)


def complete_system_failure(d: Drill) -> None:
    """2: the database cluster and the invoice bucket are gone, every version with it; provision anew,
    pull the configuration, restore the database and the bucket (from the DR replica, if there is one)."""
    from tavari_dr.core.envfile import parse
    from tavari_dr.drill.pgcluster import LocalPostgres

    scenario = "2 complete system failure"
    s3 = d.s3()
    before = fingerprints(d.database_url)
    probes: list[tuple[int, datetime]] = []
    with capture.probe_writer(d.database_url, probes):
        # Mid-segment: a segment and a half of traffic after the last one closed.
        time.sleep(capture.DRILL_SEGMENT_SECONDS * 1.5)
        d.primary.stop()  # the database is gone, cluster and all, in the middle of a segment
        incident = datetime.now(UTC)  # once it is gone: no commit comes after it
    time.sleep(2)  # a segment write in flight at the kill lands or fails; the capture exits (ECS would restart it)
    logged = capture.newest_logged_commit(d)
    if logged is None:
        raise DrillFailed("the change log is empty: nothing to restore to")
    kept = [n for n, at in probes if at <= logged]
    # The measured RPO: what the failure cut off, whatever the recovery steps then do.
    record_rpo(d, scenario, incident, restore_point=logged,
               lost={"transactions": len(probes) - len(kept), "of": len(probes),
                     "segment_seconds": capture.DRILL_SEGMENT_SECONDS})
    point = logged.replace(microsecond=0)  # --to takes whole seconds: the log's last second it can vouch for
    # A probe's time is read in its INSERT, a moment before its commit: those within that moment of the
    # point may fall either side of it; any other is certainly in or out.
    surely_in = len([at for _, at in probes if at <= point - timedelta(seconds=0.2)])
    maybe_in = len([at for _, at in probes if at <= point])
    lost_bucket = d.invoice_bucket
    # The bucket is gone, every version with it, in every environment: what survives is only what
    # the configuration keeps elsewhere (the DR replica, where replication is on).
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=lost_bucket):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=lost_bucket, Key=v["Key"], VersionId=v["VersionId"],
                             BypassGovernanceRetention=True)
    s3.delete_bucket(Bucket=lost_bucket)
    source = d.replica_bucket
    new: dict[str, Any] = {}  # what this scenario provisions

    def provision(step: Step) -> None:
        # As the lost one (logical decoding on): the change capture is pointed at it once it serves.
        secondary = d.services.enter_context(LocalPostgres(settings=capture.LOGICAL))
        new["database"] = secondary.create_database("postgres_tavari")
        new["bucket"] = f"tavari-{d.config.name}-recovered-{int(time.time())}"
        counted = d.counted_s3(step)
        counted.create_bucket(Bucket=new["bucket"], CreateBucketConfiguration={"LocationConstraint": d.config.region})
        counted.put_bucket_versioning(Bucket=new["bucket"], VersioningConfiguration={"Status": "Enabled"})
        step.detail = f"new PostgreSQL cluster on port {secondary.port}; bucket {new['bucket']}"

    d.step(scenario, "provision new infrastructure (database cluster, bucket)", provision, recovery=CRITICAL,
           kind="provision")

    def config(step: Step) -> None:
        out = d.work / "recovered.env"
        d.cli(step, "secrets", "pull", "--env", d.config.name, "--out", str(out), "--force")
        recovered = parse(out.read_text())
        if recovered != d.env_values:
            raise DrillFailed("the pulled configuration differs from what was pushed")
        step.detail = f"{len(recovered)} entries recovered from Secrets Manager"

    d.step(scenario, "recover the configuration from Secrets Manager", config, recovery=CRITICAL, kind="cli")
    restore_database(d, scenario, new["database"], d.chosen_backup, to=point)

    def verify_probes(step: Step) -> None:
        restored = fingerprints(new["database"])
        differ = sorted(t for t in before if t != "public.messages" and restored.get(t) != before[t])
        found = capture.probes_in(new["database"])
        if differ or found != list(range(len(found))) or not surely_in <= len(found) <= maybe_in \
                or restored["public.messages"]["rows"] != before["public.messages"]["rows"] + len(found):
            raise DrillFailed(f"the restore to {point:%H:%M:%S} differs from the state then: tables {differ}, "
                              f"probe rows {found[:3]}...{found[-3:]} ({len(found)}; {surely_in}-{maybe_in} "
                              "were committed by then)")
        step.detail = (f"{len(restored)} tables equal the state at {point:%H:%M:%S}, with the first {len(found)} "
                       "probe rows, those committed by then")
        step.counts.rows = sum(t["rows"] for t in restored.values())

    d.step(scenario, "verify integrity (row counts and content hashes)", verify_probes, recovery=CRITICAL,
           kind="db_scan")

    def restore_bucket(step: Step) -> None:
        if source is None:
            raise DrillFailed(f"the invoice bucket cannot be recovered: it is gone with every version, and "
                              f"{d.config.name} keeps no replica (replication.enabled is false)")
        state_dir = d.report_dir / "bucket-restore-scenario-2"
        step.versions_per_key = _versions_per_key(d, source)
        _restored(step, d.cli_json(step, "bucket", "restore", "--env", d.config.name, "--bucket", source, "--to",
                                   _restore_point(d), "--target-bucket", new["bucket"], "--apply", "--concurrency",
                                   str(costmodel.BUCKET_RESTORE_CONCURRENCY), "--state-dir", str(state_dir)))
        step.toy_actions = reported_actions(state_dir)
        step.detail = f"from the DR replica {source} into {new['bucket']}"

    d.step(scenario, "restore the invoice bucket into a new bucket", restore_bucket, recovery=NON_CRITICAL,
           kind="bucket_restore_new")
    verify_bucket(d, scenario, "verify the new bucket's visible state", new["bucket"])

    def update_config(step: Step) -> None:
        d.app_database_url = new["database"]
        d.env_values = {**d.env_values, "BACKUP_DATABASE_URL": new["database"]}
        path = d.write_env(d.env_values, "recovered-updated.env")
        d.cli(step, "secrets", "push", "--env", d.config.name, "--env-file", str(path), "--apply")
        secrets_check(d, step)

    d.step(scenario, "update connection strings, restart services", update_config, recovery=CRITICAL, kind="cli")

    def recapture(step: Step) -> None:
        # The capture's service is pointed at the recovered database: another source, so a base of its own and
        # a fresh dump of it, never the lost database's base resumed (whose positions mean nothing here).
        d.database_url = new["database"]
        capture.start(d, step, log_name="db-stream-recovered.log")

    d.step(scenario, "point the change capture at the recovered database (a new base, a fresh dump)", recapture,
           recovery=NON_CRITICAL, kind="cli")
    verify_health(d, scenario)


OUTAGE_PROBE = "outage probe"  # scenario 4's probes (scenario 2's are in the recovered database already)


def region_outage(d: Drill) -> None:
    """4: the primary region is down — every request that touches it fails, whichever region the client
    names (its buckets, its keys and secrets, any client there); fail over to the DR region from its
    replicas alone with `tavari-dr failover` (docs/runbooks/region-outage.md)."""
    from tavari_dr.core import outputs
    from tavari_dr.core.aws import OUTAGE_ENV
    from tavari_dr.core.envfile import parse
    from tavari_dr.drill import outage
    from tavari_dr.drill.pgcluster import LocalPostgres

    scenario = "4 region outage"
    name, region = d.config.name, d.config.region
    s3 = d.s3()
    # Peacetime: what replication has copied by now (moto never replicates; version IDs kept, as S3's
    # replication keeps them), and the signing key's public key in the incident kit (the runbook's export).
    replica_stack = d.config.stack_name(outputs.DATABASE_BACKUPS + "Replica")
    public_key = outage.public_key(d.deployer.client("kms", region), d.signing_key, d.work / "signing-key.der")
    change_key = outage.public_key(d.deployer.client("kms", region), d.change_signing_key,
                                   d.work / "change-signing-key.der")
    probes: list[tuple[int, datetime]] = []
    with capture.probe_writer(d.database_url, probes, OUTAGE_PROBE):
        # Mid-segment: a segment and a half of traffic, then the region goes.
        time.sleep(capture.DRILL_SEGMENT_SECONDS * 1.5)
    incident = datetime.now(UTC)  # once the last probe committed: nothing the application wrote comes after it
    before = fingerprints(d.database_url)
    # What replication had copied when the region went (moto never replicates: the drill copies, at the
    # incident, what the capture had written by then; the segment it held open never reaches the DR region).
    if replica_stack in d.deployment.stacks:
        outage.replicate_keeping_versions(s3, d.backup_bucket,
                                          d.deployment.outputs(replica_stack)[outputs.BACKUP_BUCKET_NAME])
    d.env[OUTAGE_ENV] = str(outage.declare(d.work / "outage.json", region, outage.buckets_in(s3, region)))
    new: dict[str, Any] = {}  # the restore point ("to") and what the failover lost
    try:
        def down(step: Step) -> None:
            try:
                d.cli(step, "secrets", "check", "--env", name)
            except DrillFailed as refused:
                if f"region {region} is down" not in str(refused):
                    raise
                step.detail = f"tavari-dr secrets check: region {region} is down, as every command there finds it"
                return
            raise DrillFailed(f"{region} still answers: the outage is not in force")

        d.step(scenario, f"{region} is down (its buckets, keys, secrets and endpoints refuse every request)", down)

        def plan(step: Step) -> None:
            answer = d.cli_json(step, "failover", "plan", "--env", name, "--signing-public-key", str(public_key),
                                "--change-signing-public-key", str(change_key))
            if answer["invoice_bucket"] != d.replica_bucket:
                raise DrillFailed(f"the plan names {answer['invoice_bucket']}, not the replica {d.replica_bucket}")
            if not (answer.get("change_log") or {}).get("restores_to"):
                raise DrillFailed(f"the plan replays no change log: {answer.get('change_log')}")
            new["to"] = answer["change_log"]["restores_to"]
            step.detail = (f"backup {answer['backup']['backup_id']} and the change log to {new['to']} from "
                           f"{answer['backup_bucket']}, bucket {answer['invoice_bucket']}, {len(answer['secrets'])} "
                           f"secret replicas in {answer['dr_region']}")

        d.step(scenario, "plan the failover (what the DR region holds)", plan, recovery=CRITICAL, kind="cli")

        def provision(step: Step) -> None:
            cluster = d.services.enter_context(LocalPostgres())
            new["database"] = cluster.create_database("postgres_tavari")
            step.detail = f"new PostgreSQL cluster in the DR region (emulated: port {cluster.port})"

        d.step(scenario, "provision a database in the DR region", provision, recovery=CRITICAL, kind="provision")

        def apply(step: Step) -> None:
            out = d.work / "failover.env"
            printed = d.cli(step, "failover", "apply", "--env", name, "--signing-public-key", str(public_key),
                            "--change-signing-public-key", str(change_key), "--target-url", new["database"],
                            "--out", str(out), "--force", "--yes")
            step.detail = next((line for line in printed.splitlines() if line.startswith("restored ")), printed[-200:])
            if parse(out.read_text()) != d.env_values:
                raise DrillFailed("the configuration from the replicas differs from what was pushed last")
            d.app_database_url = new["database"]
            step.counts.rows = sum(d.backup_manifest.tables.values())

        d.step(scenario, "fail over: the database from the backups' DR replica and its change log, the "
                         "configuration from the secret replicas", apply, recovery=CRITICAL, kind="db_restore")

        def verify_probes(step: Step) -> None:
            logged = datetime.fromisoformat(new["to"])
            restored = fingerprints(new["database"])
            differ = sorted(t for t in before if t != "public.messages" and restored.get(t) != before[t])
            found = capture.probes_in(new["database"], OUTAGE_PROBE)
            # A probe's time is read in its INSERT, a moment before its commit (as in scenario 2).
            surely_in = len([at for _, at in probes if at <= logged - timedelta(seconds=0.2)])
            maybe_in = len([at for _, at in probes if at <= logged])
            lost = len(probes) - len(found)
            if differ or found != list(range(len(found))) or not surely_in <= len(found) <= maybe_in \
                    or restored["public.messages"]["rows"] != before["public.messages"]["rows"] - lost:
                raise DrillFailed(f"the failover to {logged:%H:%M:%S} differs from the state then: tables {differ}, "
                                  f"probe rows {found[:3]}...{found[-3:]} ({len(found)}; {surely_in}-{maybe_in} were "
                                  "committed by then)")
            new["lost"] = {"transactions": lost, "of": len(probes), "segment_seconds": capture.DRILL_SEGMENT_SECONDS}
            step.detail = (f"{len(restored)} tables equal the state at the log's end {logged:%H:%M:%S}, with the "
                           f"first {len(found)} of {len(probes)} probe rows (those the replicated log holds)")
            step.counts.rows = sum(t["rows"] for t in restored.values())

        d.step(scenario, "verify integrity (row counts and content hashes)", verify_probes, recovery=CRITICAL,
               kind="db_scan")
        if d.replica_bucket:
            verify_bucket(d, scenario, "verify the invoice replica (the app's bucket now) equals the state at the "
                                       "restore point", d.replica_bucket)
        verify_health(d, scenario)
    finally:
        d.env.pop(OUTAGE_ENV, None)
    record_rpo(d, scenario, incident, restore_point=datetime.fromisoformat(new["to"]) if "to" in new else None,
               lost=new.get("lost"))


# The order they are played in: the report lists them in the plan's order, whatever this is.
PLAYED = (database_corruption, data_breach, complete_system_failure, region_outage)


# --------------------------------------------------------------------------- what recoveries share


def restore_database(d: Drill, scenario: str, target_url: str, backup: str, *, to: datetime | None = None) -> None:
    """From ``backup``, or with ``to`` the newest backup before it and the change log up to that second."""
    def restore(step: Step) -> None:
        if to is None:
            d.log(step, d.cli(step, "db", "restore", "--env", d.config.name, "--backup", backup, "--target-url",
                              target_url))
        else:
            capture.wait_logged_past(d, to)
            d.log(step, d.cli(step, "db", "restore", "--env", d.config.name, "--to", capture.to_text(to),
                              "--target-url", target_url))
        step.counts.rows = sum(d.backup_manifest.tables.values())

    d.step(scenario, "restore the database from the off-site backup", restore, recovery=CRITICAL, kind="db_restore")


def verify_database(d: Drill, scenario: str, url: str, *, expected: dict[str, dict[str, Any]] | None = None) -> None:
    """Against the backed-up state, or ``expected``: the state at the second a restore --to went to."""
    def verify(step: Step) -> None:
        restored = fingerprints(url)
        state = expected if expected is not None else d.baseline
        differ = sorted(t for t in state if restored.get(t) != state[t])
        if differ:
            raise DrillFailed(f"restored tables differ from the state at the restore point: {differ}")
        step.detail = (f"{len(restored)} tables: row counts and content hashes equal the "
                       f"{'state at the restore point' if expected is not None else 'backed-up state'}")
        step.counts.rows = sum(t["rows"] for t in restored.values())

    d.step(scenario, "verify integrity (row counts and content hashes)", verify, recovery=CRITICAL, kind="db_scan")


def verify_bucket(d: Drill, scenario: str, name: str, bucket: str) -> None:
    def verify(step: Step) -> None:
        state = bucket_state(d.counted_s3(step), bucket)
        if state != d.bucket_baseline:
            raise DrillFailed(f"{bucket} differs from the state at the restore point: "
                              + state_difference(state, d.bucket_baseline))
        step.detail = f"{len(state)} visible objects equal the state at the restore point"

    d.step(scenario, name, verify, recovery=NON_CRITICAL, kind="bucket_verify")


def verify_health(d: Drill, scenario: str, *, attempts: int = 10) -> None:
    # Services come back within seconds of a restart: poll, as an operator's check would (urllib3's
    # Retry: a refusal or an error status is asked again, about a second apart), and say what the last
    # answer was if they never do.
    retry = urllib3.util.Retry(total=attempts - 1, status_forcelist=range(400, 600), backoff_factor=0.5,
                               backoff_max=1.0, raise_on_status=False, redirect=0)
    http = urllib3.PoolManager()

    def health(step: Step) -> None:
        answered = []
        for endpoint in d.config.drill.health_endpoints:
            url = d.standin.local_url(endpoint)
            try:
                response = http.request("GET", url, timeout=10, retries=retry)
            except urllib3.exceptions.MaxRetryError as err:
                raise DrillFailed(f"{endpoint} (emulated: stand-in {url}) did not answer {attempts} times: "
                                  f"{type(err.reason).__name__}") from None
            if response.status >= 400:
                raise DrillFailed(f"{endpoint} (emulated: stand-in {url}) answered {response.status} "
                                  f"{response.data[:200].decode(errors='replace')} {attempts} times")
            answered.append(f"{endpoint} (emulated: stand-in {url}) {response.status}")
        step.detail = "; ".join(answered) or "no health endpoints configured"
        step.counts.requests["api"] = len(answered)

    d.step(scenario, "verify health endpoints", health, recovery=CRITICAL, kind="health")


def record_rpo(d: Drill, scenario: str, incident: datetime, *, restore_point: datetime | None = None,
               lost: dict[str, Any] | None = None) -> None:
    """The data lost: from the restore point (the dump's start, or the second restore --to went to) to
    the incident; ``lost``: what a failure cut off, counted (the measured RPO)."""
    restored_to = restore_point or datetime.fromisoformat(d.backup_manifest.started_at)
    d.facts.setdefault("rpo", {})[scenario] = {
        "incident": incident.isoformat(timespec="seconds"),
        "restore_point": restored_to.isoformat(timespec="seconds"),
        "data_loss_window_seconds": round(max(0.0, (incident - restored_to).total_seconds()), 1),
        **({"lost": lost} if lost else {})}


def _restore_point(d: Drill) -> str:
    assert d.bucket_t0 is not None
    return d.bucket_t0.isoformat(timespec="seconds").replace("+00:00", "Z")


def _restored(step: Step, answer: dict[str, Any]) -> None:
    """A bucket restore's result (`bucket restore --format json`) as the step's detail."""
    result = answer["result"]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result["counts"].items()))
    step.detail = f"{counts} in {result['seconds']:.1f} s; per-key report: {result['report']}"


def _versions_per_key(d: Drill, bucket: str) -> float:
    """Listing entries (versions and delete markers) per key: what a production listing scales by."""
    entries, keys = 0, set()
    for page in d.s3().get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            entries += 1
            keys.add(v["Key"])
    return entries / max(1, len(keys))
