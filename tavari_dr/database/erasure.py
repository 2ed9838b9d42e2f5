"""The erasure ledger: which accounts were erased (GDPR art. 17), so that no restore brings them back.

A backup taken before an erasure still holds the account's rows, and Object Lock keeps it for its
tier's retention. So every erasure is also recorded in the backup bucket, under ``erasure/``, and every
restore path deletes the recorded accounts' rows again once the data is in (``reapply``, by the
environment's account map, ``data_export.datasets``, which every caller passes):
`tavari-dr db restore`, the full `db verify` (the monthly restore test, the quarterly drill's restore
branch), the partial restore (``apply_erasures``) and, by hand after a Supabase-side restore,
`tavari-dr erasure apply`.

One object per erasure, holding only the account's UUID, its businesses' UUIDs and the erasure time
(no e-mail, no name)::

    erasure/<account uuid>/<erased at, %Y%m%dT%H%M%S.%fZ>-<12 hex>.json
    {"format": "tavari-erasure/2", "account_id": "<uuid>", "erased_at": "<ISO 8601, UTC>",
     "business_ids": ["<uuid>", ...]}

The business IDs are what names the account's invoice PDFs (``data_export.invoice_key_prefix``, by
default ``invoices/{business_id}/``): once the rows are gone nothing else can say which keys were the
account's, and a bucket restore (tavari_dr.cli.bucket) leaves them out. An entry of the first format
("tavari-erasure/1", no business_ids) still erases rows; a bucket restore under a per-business prefix
refuses it (``invoice_prefixes``) until the erasure is recorded again with its businesses.

written with If-None-Match: * (a second erasure of the same account is a second object, never an
overwrite), locked until the erasure time plus the longest tier's retention plus a day — so the record
outlives every backup that can still hold the account's rows — and never expired by lifecycle. The lock
is GOVERNANCE in every environment, not the dumps' COMPLIANCE of prod: an entry recorded by mistake
deletes a live customer's rows on every restore, so the break-glass role (the only principal prod's
bucket policy lets bypass governance) must be able to withdraw it, on purpose and on the trail. The
bucket policy refuses writes without If-None-Match and deletes under ``erasure/``
(tavari_dr.core.guardrails); the bucket's replication rule covers every prefix, so the ledger is in
the DR region with the dumps.

Which entries a restore applies: all of them, not only those after the backup's start. Re-applying an
older erasure deletes nothing (its rows are not in a later backup), and a time filter would miss the
erasure recorded just before a backup whose snapshot still saw the rows (the app records, then deletes).
Deleting is idempotent; one statement per table covers every account.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tavari_dr.core import accountmap, s3sink
from tavari_dr.core.config import Dataset, Tier
from tavari_dr.database.manifest import DEFAULT_TIERS, BackupError

PREFIX = "erasure/"
FORMAT = "tavari-erasure/2"
FORMAT_V1 = "tavari-erasure/1"  # before business_ids: read, never written
TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
KEY_RE = re.compile(r"^erasure/(?P<account>[0-9a-f-]{36})/(?P<time>\d{8}T\d{6}\.\d{6}Z)-[0-9a-f]{12}\.json$")
FIELDS_V1 = {"format", "account_id", "erased_at"}
FIELDS = FIELDS_V1 | {"business_ids"}
LOCK_MODE = "GOVERNANCE"  # everywhere: see the module's docstring


class ErasureError(BackupError):
    """The ledger could not be read or applied: the restored database may still hold erased accounts."""


@dataclass(frozen=True)
class LedgerEntry:
    account_id: str
    erased_at: datetime
    key: str = ""
    version_id: str | None = None
    business_ids: tuple[str, ...] | None = ()  # None: a first-format entry, which does not say

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"format": FORMAT if self.business_ids is not None else FORMAT_V1,
                                    "account_id": self.account_id,
                                    "erased_at": self.erased_at.astimezone(UTC).isoformat(timespec="microseconds")}
        if self.business_ids is not None:
            document["business_ids"] = list(self.business_ids)
        return document


def account_id(value: str) -> str:
    """The canonical form of an account UUID, or ValueError."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"{value!r} is not an account UUID") from None


def ledger_key(account: str, erased_at: datetime) -> str:
    return f"{PREFIX}{account}/{erased_at.astimezone(UTC).strftime(TIME_FORMAT)}-{uuid.uuid4().hex[:12]}.json"


def lock_until(erased_at: datetime, tiers: Sequence[Tier] = DEFAULT_TIERS) -> datetime:
    """Longer than any backup can hold the account's rows: every such backup started before the
    erasure and is expired by lifecycle a day after its tier's retention."""
    return erased_at.astimezone(UTC) + timedelta(days=max(t.retention_days for t in tiers) + 1)


def record(s3: Any, bucket: str, account: str, *, business_ids: Sequence[str], erased_at: datetime | None = None,
           tiers: Sequence[Tier] = DEFAULT_TIERS) -> LedgerEntry:
    """Write one ledger entry (a new object, never an overwrite); returns it with its key and version.
    ``business_ids``: the account's businesses (none is an empty list, said on purpose)."""
    account = account_id(account)
    businesses = tuple(sorted({account_id(b) for b in business_ids}))
    when = (erased_at or datetime.now(UTC)).astimezone(UTC)
    entry = LedgerEntry(account, when, business_ids=businesses)
    key = ledger_key(account, when)
    body = json.dumps(entry.document(), sort_keys=True).encode()
    version = s3sink.put_new(s3, bucket, key, body, error=ErasureError, ContentType="application/json",
                             ChecksumAlgorithm="SHA256", ObjectLockMode=LOCK_MODE,
                             ObjectLockRetainUntilDate=lock_until(when, tiers))
    return LedgerEntry(account, when, key, version, businesses)


def parse(key: str, body: bytes) -> LedgerEntry:
    """One ledger object, refused unless it is exactly what ``record`` writes (and its key and body agree)."""
    match = KEY_RE.match(key)
    if not match:
        raise ErasureError(f"s3 key {key!r} is not a ledger entry (erasure/<uuid>/<time>-<id>.json)")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ErasureError(f"{key}: not JSON") from None
    if not isinstance(document, dict) or not (
            (document.get("format") == FORMAT and set(document) == FIELDS)
            or (document.get("format") == FORMAT_V1 and set(document) == FIELDS_V1)):
        raise ErasureError(f"{key}: not a {FORMAT} entry (fields {sorted(FIELDS)} and nothing else)")
    try:
        account = account_id(document["account_id"])
        when = datetime.fromisoformat(document["erased_at"])
        listed = document.get("business_ids")
        if listed is not None and not isinstance(listed, list):
            raise ValueError("business_ids is not a list")
        businesses = None if listed is None else tuple(account_id(b) for b in listed)
    except (TypeError, ValueError) as err:
        raise ErasureError(f"{key}: {err}") from None
    if account != match["account"]:
        raise ErasureError(f"{key}: names account {account}, its key another")
    return LedgerEntry(account, when if when.tzinfo else when.replace(tzinfo=UTC), key, business_ids=businesses)


def read_ledger(s3: Any, bucket: str) -> list[LedgerEntry]:
    """Every entry, oldest first. Any object that is not an entry fails the read: skipping it could
    let an erased account back."""
    entries = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
            for item in page.get("Contents", []):
                response = s3.get_object(Bucket=bucket, Key=item["Key"])
                entry = parse(item["Key"], response["Body"].read())
                entries.append(LedgerEntry(entry.account_id, entry.erased_at, entry.key, response.get("VersionId"),
                                           entry.business_ids))
    except ErasureError:
        raise
    except Exception as err:  # S3 refused or failed: no restore may pass as if nothing was erased
        raise ErasureError(f"could not read the erasure ledger s3://{bucket}/{PREFIX}: {err}") from err
    return sorted(entries, key=lambda e: (e.erased_at, e.account_id))


def apply_erasures(conn: Any, ledger_entries: Iterable[LedgerEntry], *, datasets: Sequence[Dataset]) -> dict[str, int]:
    """Delete the ledger's accounts' rows through ``conn`` (psycopg, in one transaction: all or none) by
    the environment's account map ``datasets``; returns table -> rows removed. For every restore path;
    idempotent."""
    accounts = sorted({e.account_id for e in ledger_entries})
    if not accounts:
        return {}
    with conn.transaction():
        return accountmap.erase_accounts(conn, accounts, datasets)


def reapply(s3: Any, bucket: str, connect: Callable[[], Any], *, datasets: Sequence[Dataset],
            log: Callable[[str], None] = lambda _m: None) -> dict[str, int]:
    """What a restore calls once the data is in: read the ledger beside the backups, apply it through
    ``connect()`` (a psycopg connection, as a context manager) to the restored database, say how many
    rows went. Any failure is an ErasureError."""
    entries = read_ledger(s3, bucket)
    if not entries:
        log("erasure ledger: empty, nothing to re-apply")
        return {}
    try:
        with connect() as conn:
            removed = apply_erasures(conn, entries, datasets=datasets)
    except Exception as err:
        raise ErasureError(f"re-applying the erasure ledger failed ({type(err).__name__}: {err}); the restored "
                           "database may still hold erased accounts: do not put it in service, fix the cause "
                           "and run tavari-dr erasure apply --target-url") from err
    accounts = len({e.account_id for e in entries})
    log(f"erasure ledger: {accounts} erased account(s) re-applied, {sum(removed.values())} row(s) removed")
    return removed


def invoice_prefixes(entries: Iterable[LedgerEntry], template: str) -> list[str]:
    """Every erased account's invoice-bucket key prefixes (the account map's object side,
    ``data_export.invoice_key_prefix``), sorted. An entry that does not name its businesses under a
    per-business template is an ErasureError: its keys are unknown, and guessing none would restore them."""
    prefixes: set[str] = set()
    for entry in entries:
        try:
            prefixes.update(accountmap.invoice_prefixes(template, entry.account_id, entry.business_ids))
        except accountmap.AccountMapError as err:
            raise ErasureError(f"{entry.key or entry.account_id}: {err} (a {FORMAT_V1} entry); record the "
                               "erasure again with its businesses: tavari-dr erasure record --account ... "
                               "--business ...") from None
    return sorted(prefixes)
