"""The change capture in the drill (ADR 0020): `db stream --setup`, then `db stream` as a background
process for the whole run, as the ECS service runs it; what scenarios need of its log."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from tavari_dr.drill.context import Drill, DrillFailed, Step

# Short segments so the drill waits seconds, not the default minute, for its log (the RPO it
# measures is then this, plus the write): say so wherever a number comes from it.
DRILL_SEGMENT_SECONDS = 2.0
LOGICAL = {"wal_level": "logical", "max_wal_senders": "10", "max_replication_slots": "10"}


def start(d: Drill, step: Step, *, log_name: str = "db-stream.log") -> None:
    """`db stream --setup` then `db stream` on d.database_url, until a base of that very database is written (a
    capture pointed at a new database after a recovery starts its own base, and a fresh dump)."""
    d.log(step, d.cli(step, "db", "stream", "--env", d.config.name, "--setup", "--database-url", d.database_url))
    d.capture_source = source_of(d.database_url)
    log = (d.work / log_name).open("w")
    command = [sys.executable, "-m", "tavari_dr", "db", "stream", "--env", d.config.name, "--cdk-json",
               str(d.cdk_json), "--database-url", d.database_url, "--segment-seconds", str(DRILL_SEGMENT_SECONDS),
               "--publish-metrics", "--dump-in-process"]
    # --dump-in-process: the emulator runs no ECS task, so a base reset's dump is taken by this process
    # (the deployed service has ECS run the nightly job's task instead: --dump-task).
    step.commands.append(f"tavari-dr db stream --env {d.config.name} --cdk-json {d.cdk_json} --database-url … "
                         f"--segment-seconds {DRILL_SEGMENT_SECONDS} --publish-metrics --dump-in-process "
                         "(in the background)")
    step.command = "; ".join(step.commands)
    process = subprocess.Popen(command, env=d.subprocess_env(), stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                               cwd=d.cdk_json.parent)

    def stop() -> None:
        if process.poll() is None:
            process.terminate()  # SIGTERM: the segment it holds is written before it exits
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()

    d.services.callback(stop)
    deadline = time.monotonic() + 120
    while (base := current_base(d)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise DrillFailed(f"`tavari-dr db stream` did not start: {(d.work / log_name).read_text()[-600:]}")
        time.sleep(0.2)
    fresh = "" if base_count(d) == 1 else "a new base of this database, with a fresh dump; "
    step.detail = (f"capturing into base {base} ({fresh}a segment every {DRILL_SEGMENT_SECONDS:g} s: the drill's; "
                   "production: 60 s)")


def source_of(url: str) -> str | None:
    """The change log's tag of the database at ``url`` (its segments' keys end with it)."""
    import psycopg

    from tavari_dr.changes.segment import source_tag
    from tavari_dr.database.backup import source_identity

    with psycopg.connect(url) as conn:
        return source_tag(source_identity(conn.cursor()))


def base_count(d: Drill) -> int:
    return d.s3().list_objects_v2(Bucket=d.backup_bucket, Prefix="changes/bases/").get("KeyCount", 0)


def current_base(d: Drill, *, after: datetime | None = None) -> str | None:
    """The newest base of the database the drill captures now (d.database_url), once written (with ``after``:
    only one created after it)."""
    from tavari_dr.changes.segment import list_bases, read_base, source_tag
    from tavari_dr.database.signing import change_verifier

    tag = d.capture_source
    verifier = change_verifier(d.deployer.client("kms", d.config.region), d.change_signing_key)
    for base_id in reversed(list_bases(d.s3(), d.backup_bucket)):
        base = read_base(d.s3(), d.backup_bucket, base_id, verifier)
        if source_tag(base.identity) == tag:
            return base_id if after is None or datetime.fromisoformat(base.created_at) > after else None
    return None


def newest_logged_commit(d: Drill) -> datetime | None:
    """The last commit the log of the database the drill captures now holds (its newest segment's), or None.
    Only that database's segments: after a recovery, the old database's log sits beside it (ordered by another
    cluster's positions)."""
    from tavari_dr.changes.segment import list_segments, open_segment
    from tavari_dr.database.signing import change_verifier

    now = datetime.now(UTC)
    s3, bucket = d.s3(), d.backup_bucket
    keys = list_segments(s3, bucket, now - timedelta(days=1), now + timedelta(hours=1),
                         source=d.capture_source)
    if not keys:
        return None
    verifier = change_verifier(d.deployer.client("kms", d.config.region), d.change_signing_key)
    opened = open_segment(s3, bucket, keys[-1].key, verifier)
    try:
        return datetime.fromisoformat(opened.header.last_commit)
    finally:
        opened.close()


def wait_logged_past(d: Drill, point: datetime, timeout: float = 60) -> datetime:
    """Until the log holds a commit at or after ``point`` (so it shows everything up to it)."""
    deadline = time.monotonic() + timeout
    while True:
        newest = newest_logged_commit(d)
        if newest is not None and newest >= point:
            return newest
        if time.monotonic() > deadline:
            raise DrillFailed(f"the change log holds nothing after {point:%H:%M:%S} within {timeout:.0f} s")
        time.sleep(0.5)


def server_now(url: str) -> datetime:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def wait_restorable(d: Drill, *, after: datetime | None = None, timeout: float = 180) -> str:
    """Until the newest dump belongs to the base the capture writes now (and, with ``after``, that base began
    after it: the reset a change made then). A base reset (a schema change, a table the base did not capture:
    scenario 1's partial restore creates and drops tables in the live database) leaves no point restorable from
    its reset until its fresh dump's snapshot; `restore --to` refuses such a point, naming why. A scenario that
    needs exact points starts after that, as an incident would not come within the seconds after an operator's
    cleanup. Returns the dump's ID."""
    from tavari_dr.changes import replay
    from tavari_dr.changes.pitr import newest_dump_before
    from tavari_dr.database.manifest import BackupError
    from tavari_dr.database.signing import change_verifier, manifest_verifier

    kms = d.deployer.client("kms", d.config.region)
    manifests, changes = manifest_verifier(kms, d.signing_key), change_verifier(kms, d.change_signing_key)
    deadline = time.monotonic() + timeout
    while True:
        base = current_base(d, after=after)
        try:
            dump = newest_dump_before(d.s3(), d.backup_bucket, datetime.now(UTC), verifier=manifests,
                                      tiers=d.config.database_backups.tiers)
            found, _ = replay.base_of(dump, replay.bases(d.s3(), d.backup_bucket, changes))
        except BackupError:
            found = None
        if base is not None and found is not None and found.base_id == base:
            return dump.backup_id
        if time.monotonic() > deadline:
            raise DrillFailed(f"no dump of the capture's base {base} within {timeout:.0f} s (the fresh dump after a "
                              "base reset)")
        time.sleep(0.5)


def second_before(moment: datetime) -> datetime:
    """One second before ``moment``, to the microsecond (--to takes fractions of a second: a point cut down to
    its whole second may fall before the snapshot of a dump taken within that second, which then cannot
    serve it)."""
    return moment - timedelta(seconds=1)


def to_text(point: datetime) -> str:
    return point.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextlib.contextmanager
def probe_writer(url: str, rows: list[tuple[int, datetime]], label: str = "rpo probe"):
    """A message committed every 0.1 s, each one's index and commit time (the server's clock) recorded,
    until the block ends: the traffic a mid-segment failure cuts off. ``label``: each scenario's own, so its
    probes are told from an earlier scenario's restored ones."""
    import threading

    import psycopg

    stop = threading.Event()

    def write() -> None:
        with contextlib.suppress(psycopg.OperationalError), psycopg.connect(url, autocommit=True) as conn:
            business = conn.execute("SELECT id FROM public.businesses ORDER BY id LIMIT 1").fetchone()[0]
            n = 0
            while not stop.is_set():
                at = conn.execute("INSERT INTO public.messages (business_id, direction, body, sent_at) VALUES "
                                  "(%s, 'in', %s, now()) RETURNING clock_timestamp()",
                                  (business, f"{label} {n}")).fetchone()[0]
                rows.append((n, at))
                n += 1
                time.sleep(0.1)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def probes_in(url: str, label: str = "rpo probe") -> list[int]:
    """The probe rows' indexes, in order."""
    import psycopg

    with psycopg.connect(url) as conn:
        return sorted(int(r[0].rsplit(" ", 1)[1]) for r in conn.execute(
            "SELECT body FROM public.messages WHERE body LIKE %s", (f"{label} %",)))


__all__ = ["LOGICAL", "probes_in", "newest_logged_commit", "probe_writer", "second_before", "start",
           "to_text", "wait_logged_past", "wait_restorable"]
