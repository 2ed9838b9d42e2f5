"""Safe overwrites: what `db restore --force` will drop, the operator's yes, and a copy first.

A forced restore drops every user schema of the target (and empties the auth/storage tables the
backup refills: tavari_dr.database.backup.force_clears). Before anything is written, this module
reads that list with row counts off the target, asks for confirmation, and takes a backup of the
target itself (reason PRE_RESTORE, daily tier, signed like every backup) so the overwrite can be
undone. A pre-restore copy is never ``latest`` (tavari_dr.database.manifest.find_backup), so the
freshness check and the backup-age alarm keep judging the source's backups, and the restore that
follows cannot pick the copy it just took.

``preview`` is the dry run: the same reading, nothing written to the target or to S3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tavari_dr.core.config import DEFAULT_DATASETS, Dataset, Tier
from tavari_dr.database import backup as db
from tavari_dr.database.failures import database_step
from tavari_dr.database.manifest import PRE_RESTORE, BackupError, Manifest, find_backup
from tavari_dr.database.signing import KmsVerifier

SAFETY_TIER = "daily"


@dataclass
class OverwritePlan:
    """What restoring ``backup_id`` over ``target`` drops (schema -> table -> rows) and empties."""

    backup_id: str
    target: str  # the URL without its password
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    # The target's large objects: the database's own (pg_largeobject), in no schema a DROP reaches; the
    # overwrite unlinks every one, since the backup brings its own under the same OIDs.
    large_objects: int = 0
    refused: str | None = None  # why the restore would stop (a non-empty target without --force)

    @property
    def destructive(self) -> bool:
        return bool(self.dropped) or any(self.truncated.values()) or bool(self.large_objects)

    @property
    def rows(self) -> int:
        return sum(sum(t.values()) for t in self.dropped.values()) + sum(self.truncated.values())

    def lines(self) -> list[str]:
        if self.refused:
            return [f"restoring {self.backup_id} into {self.target} would be refused: {self.refused}"]
        if not self.destructive:
            return [f"restoring {self.backup_id} into {self.target} drops nothing: the target holds no user data"]
        out = [f"restoring {self.backup_id} into {self.target} drops {len(self.dropped)} schema(s) and "
               f"{self.rows} row(s):"]
        for schema, tables in self.dropped.items():
            out.append(f"  DROP SCHEMA {schema} CASCADE ({len(tables)} table(s), {sum(tables.values())} rows)")
            out.extend(f"    {table}: {rows} rows" for table, rows in tables.items())
        for table, rows in self.truncated.items():
            if rows:
                out.append(f"  TRUNCATE {table} ({rows} rows; refilled from the backup)")
        if self.large_objects:
            out.append(f"  lo_unlink {self.large_objects} large object(s) (the backup's are restored)")
        return out

    def document(self) -> dict[str, Any]:
        return {"backup": self.backup_id, "target": self.target, "dropped": self.dropped,
                "truncated": self.truncated, "rows": self.rows, "large_objects": self.large_objects,
                "refused": self.refused}


def read_plan(target_url: str, manifest: Manifest, existing: list[str], *, force: bool = True) -> OverwritePlan:
    """Row counts of everything a restore of ``manifest`` over the target would drop or empty."""
    from psycopg import sql

    conn_info = db.parse_database_url(target_url)
    plan = OverwritePlan(manifest.backup_id, conn_info.url_without_password)
    if existing and not force:
        plan.refused = (f"the target already holds {len(existing)} user table(s) (e.g. {existing[0]}); "
                        "pass --force to replace them")
        return plan
    with database_step(target_url, "reading what the restore would drop"), \
            db._connect(conn_info) as conn, conn.cursor() as cur:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        schemas, truncated = db.force_clears(manifest, db.target_user_schemas(cur)) if force else ([], [])
        for schema in schemas:
            cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1", (schema,))
            names = [row[0] for row in cur.fetchall()]
            if not names and not _schema_exists(cur, schema):
                continue
            plan.dropped[schema] = {}
            for name in names:
                cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
                plan.dropped[schema][f"{schema}.{name}"] = cur.fetchone()[0]
        for table in truncated:
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0] is None:
                continue
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table)))  # quote_ident'ed manifest name
            plan.truncated[table] = cur.fetchone()[0]
        if force:
            cur.execute("SELECT count(*) FROM pg_largeobject_metadata")
            plan.large_objects = cur.fetchone()[0]
    return plan


def _schema_exists(cur: Any, schema: str) -> bool:
    cur.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,))
    return bool(cur.fetchone()[0])


def existing_tables(target_url: str) -> list[str]:
    with database_step(target_url, "inspecting the target"), \
            db._connect(db.parse_database_url(target_url)) as conn, conn.cursor() as cur:
        return db.user_tables(cur)


def preview(s3: Any, bucket: str, which: str, target_url: str, *, verifier: KmsVerifier | None,
            manifest_version: str | None = None, tiers: tuple[Tier, ...] = db.DEFAULT_TIERS,
            force: bool = False) -> OverwritePlan:
    """The dry run: open (and verify) the backup, read the target; write nothing anywhere."""
    manifest = find_backup(s3, bucket, which, verifier=verifier, manifest_version=manifest_version,
                           tiers=tiers).manifest
    return read_plan(target_url, manifest, existing_tables(target_url), force=force)


@dataclass(frozen=True)
class SafetyBackup:
    """How to take the pre-restore copy: ``run_backup``'s bucket, signer and settings."""

    s3: Any
    bucket: str
    signer: Any
    tiers: tuple[Tier, ...] = db.DEFAULT_TIERS
    lock_mode: str = "GOVERNANCE"
    pg_bin: Any = None

    def take(self, target_url: str) -> Manifest:
        try:
            return db.run_backup(self.s3, self.bucket, target_url, reason=PRE_RESTORE, signer=self.signer,
                                 tiers=self.tiers, lock_mode=self.lock_mode, pg_bin=self.pg_bin,
                                 tier_name=SAFETY_TIER)
        except BackupError as err:
            raise BackupError(f"the pre-restore backup of the target failed, so nothing was changed: {err} "
                              "(pass --no-safety-backup to overwrite without one)") from None


@dataclass
class Overwrite:
    result: db.VerifyResult
    plan: OverwritePlan | None = None
    safety: Manifest | None = None  # the pre-restore copy, when one was taken


class NotConfirmed(BackupError):
    """The operator said no: nothing was written."""


def restore_over(s3: Any, bucket: str, which: str, target_url: str, *, verifier: KmsVerifier | None,
                 confirm: Callable[[OverwritePlan], bool], safety: SafetyBackup | None,
                 manifest_version: str | None = None, tiers: tuple[Tier, ...] = db.DEFAULT_TIERS,
                 pg_bin: Any = None, log: Callable[[str], None] = lambda _m: None, jobs: int | None = None,
                 work_dir: Any = None, datasets: Sequence[Dataset] = DEFAULT_DATASETS) -> Overwrite:
    """restore(force=True) with the plan shown and confirmed and the target backed up first, all
    before the restore writes anything (its ``before_write`` hook)."""
    outcome = Overwrite(result=db.VerifyResult("", []))

    def before_write(manifest: Manifest, existing: list[str]) -> None:
        plan = outcome.plan = read_plan(target_url, manifest, existing)
        if not plan.destructive:
            return
        if not confirm(plan):
            raise NotConfirmed(f"not confirmed: nothing was written to {plan.target}")
        if safety is not None:
            log(f"taking a pre-restore backup of {plan.target} into s3://{safety.bucket}/ ...")
            outcome.safety = safety.take(target_url)
            log(f"pre-restore backup {outcome.safety.backup_id} ({len(outcome.safety.tables)} tables, "
                f"{sum(outcome.safety.tables.values())} rows, large objects included)")
            log(f"the way back: tavari-dr db restore --backup {outcome.safety.backup_id} --target-url {plan.target} "
                "--force")

    with database_step(target_url, "restoring into the target"):
        outcome.result = db.restore(s3, bucket, which, target_url, verifier=verifier, manifest_version=manifest_version,
                                    tiers=tiers, force=True, pg_bin=pg_bin, log=log, before_write=before_write,
                                    jobs=jobs, work_dir=work_dir, datasets=datasets)
    return outcome
