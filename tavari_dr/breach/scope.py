"""A breach's scope: the accounts whose data changed since T (tavari_dr.breach.diff), the object requests
since T (tavari_dr.breach.logs), which sources were read and which could not be, and the deadlines as the
regulation words them. The CSV is for the notification mail merge: one line per account.

This states what was found and quotes the law; it is not legal advice: whether a breach is likely to
result in a risk, or a high risk, is for the controller (with its counsel and DPO) to judge.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tavari_dr.breach.diff import KINDS, DataDiff
from tavari_dr.breach.logs import ObjectEvent, Source

ART_33 = ("GDPR Art. 33(1): \"In the case of a personal data breach, the controller shall without undue delay and, "
          "where feasible, not later than 72 hours after having become aware of it, notify the personal data breach "
          "to the supervisory authority competent in accordance with Article 55, unless the personal data breach is "
          "unlikely to result in a risk to the rights and freedoms of natural persons. Where the notification to the "
          "supervisory authority is not made within 72 hours, it shall be accompanied by reasons for the delay.\"")
ART_34 = ("GDPR Art. 34(1): \"When the personal data breach is likely to result in a high risk to the rights and "
          "freedoms of natural persons, the controller shall communicate the personal data breach to the data "
          "subject without undue delay.\"")
NOT_ADVICE = ("This report quotes the regulation and states what the sources show; it is not legal advice. Whether "
              "the breach is likely to result in a risk (Art. 33) or a high risk (Art. 34) is the controller's "
              "judgement.")
CSV_COLUMNS = ("account_id", "email", "tables", "rows_changed", "rows_deleted", "rows_added", "objects_read",
               "objects_written")
# OWASP's CSV injection guidance: a cell that begins with one of these is a formula (or starts one) in
# Excel, LibreOffice and Google Sheets; an e-mail address such as =HYPERLINK(...)@x.example is someone's
# input, so such a cell is written with a single quote in front (the spreadsheet shows the text, and
# whoever reads the file as data strips that one quote). The csv module quotes embedded quotes itself.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


def neutralised(value: Any) -> Any:
    """A CSV cell as a spreadsheet shows it as text, never runs it (FORMULA_STARTS)."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def deadlines(aware_at: datetime, now: datetime) -> dict[str, Any]:
    authority = aware_at + timedelta(hours=72)
    return {
        "aware_at": aware_at.isoformat(timespec="seconds"),
        "supervisory_authority": {"not_later_than": authority.isoformat(timespec="seconds"),
                                  "hours_left": round((authority - now).total_seconds() / 3600, 1),
                                  "quote": ART_33},
        "data_subjects": {"when": "without undue delay, where the breach is likely to result in a high risk",
                          "quote": ART_34},
        "note": NOT_ADVICE,
    }


def object_account(key: str, owners: dict[str, str], accounts: set[str]) -> str | None:
    """The account an object key names: a path segment that is a business ID (invoices/<business>/...)
    or a user ID."""
    for segment in key.split("/"):
        if _UUID.match(segment):
            if segment in owners:
                return owners[segment]
            if segment in accounts:
                return segment
    return None


@dataclass
class Scope:
    since: datetime
    backup_id: str
    backup_started_at: str
    diff: DataDiff
    sources: list[Source]
    deadlines: dict[str, Any]
    # T itself when the change log carried the backup to T (db restore --to): then the diff is exactly what
    # changed since T; None when only the last backup before T could be compared.
    replayed_to: str | None = None

    def events(self) -> list[ObjectEvent]:
        return [e for s in self.sources for e in s.events]

    def rows(self) -> list[dict[str, Any]]:
        """One per account touched, by rows or by object requests (for the CSV)."""
        known = set(self.diff.emails) | set(self.diff.business_owners.values())
        objects: dict[str, Counter[str]] = {}
        for event in self.events():
            account = object_account(event.key, self.diff.business_owners, known)
            if account is not None:
                objects.setdefault(account, Counter())[event.action] += 1
        accounts = sorted(self.diff.accounts() | set(objects))
        rows = []
        for account in accounts:
            touched = [t for t in self.diff.tables if account in t.accounts()]
            row: dict[str, str | int] = {"account_id": account, "email": self.diff.emails.get(account, ""),
                   "tables": ";".join(t.table for t in touched)}
            for kind in KINDS:
                row[f"rows_{kind}"] = sum(t.counts[kind][account] for t in touched)
            row["objects_read"] = objects.get(account, Counter())["read"]
            row["objects_written"] = objects.get(account, Counter())["write"]
            rows.append(row)
        return rows

    def csv(self) -> str:
        """accounts.csv: one line per account; a text cell that a spreadsheet would read as a formula
        (FORMULA_STARTS) is written with a leading single quote."""
        out = io.StringIO()
        # Every text cell in double quotes (OWASP's advice too): a carriage return or a comma in an address
        # stays inside its cell.
        writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        writer.writeheader()
        writer.writerows({k: neutralised(v) for k, v in row.items()} for row in self.rows())
        return out.getvalue()

    @property
    def _against(self) -> str:
        if self.replayed_to:
            return f"backup {self.backup_id} and the change log replayed to {self.replayed_to}"
        return f"backup {self.backup_id}, started {self.backup_started_at}"

    def document(self) -> dict[str, Any]:
        unread = [s.name for s in self.sources if not s.read]
        return {
            "format": "tavari-breach-scope/1",
            "since": self.since.isoformat(timespec="seconds"),
            "compared_with": {"backup_id": self.backup_id, "started_at": self.backup_started_at,
                              "replayed_to": self.replayed_to,
                              "caveat": ("the diff sees every change since T (the backup and the change log up "
                                         "to T), the users' own included; it cannot see reads")
                              if self.replayed_to else
                              ("the diff sees every change since the backup, also those between the backup and "
                               "T and the users' own since; it cannot see reads")},
            "accounts": self.rows(),
            "tables": {t.table: {"keyed_by": t.keyed_by or None,
                                 **{k: dict(sorted(t.counts[k].items())) for k in KINDS},
                                 "rows_of_no_account": t.unowned} for t in self.diff.tables},
            "tables_not_compared": self.diff.missing,
            "object_requests": [e.document() for e in self.events()],
            "sources": [{"source": "database diff", "read": True,
                         "detail": f"live database against {self._against}"},
                        *(s.document() for s in self.sources)],
            "sources_not_read": unread,
            # Log lines (or trail records) that could not be read: counted, skipped, never the end of the scope.
            "malformed_log_records": sum(s.malformed.count for s in self.sources),
            "deadlines": self.deadlines,
        }

    def lines(self) -> list[str]:
        rows = self.rows()
        authority = self.deadlines["supervisory_authority"]
        lines = [f"breach scope since {self.since.isoformat(timespec='seconds')}: {len(rows)} account(s) touched "
                 f"(live database against {self._against})"]
        for t in self.diff.tables:
            totals = {k: sum(t.counts[k].values()) + t.unowned[k] for k in KINDS}
            if any(totals.values()):
                lines.append(f"  {t.table}: " + ", ".join(f"{n} {k}" for k, n in totals.items())
                             + f" in {len(t.accounts())} account(s)")
        for source in self.sources:
            lines.append(f"  {'read' if source.read else 'NOT READ'}: {source.name}: {source.detail}")
        malformed = sum(s.malformed.count for s in self.sources)
        if malformed:
            lines.append(f"  WARNING: {malformed} log record(s) could not be read and were skipped (per source "
                         "above): the requests they held are not counted")
        reads = [e for e in self.events() if e.action == "read"]
        lines.append(f"  object requests since T: {len(reads)} read(s), {len(self.events()) - len(reads)} write(s)")
        lines += [f"deadline (supervisory authority): not later than {authority['not_later_than']} "
                  f"({authority['hours_left']} h left), 72 hours after becoming aware at {self.deadlines['aware_at']}",
                  f"  {ART_33}", "affected people: without undue delay where the risk is high", f"  {ART_34}",
                  NOT_ADVICE]
        return lines


def restore_before(s3: Any, bucket: str, since: datetime, live_url: str, *, verifier: Any, change_verifier: Any,
                   tiers: Any, scratch_url: str | None, log: Any, compare: Any,
                   **restore_options: Any) -> tuple[Any, Any, str | None]:
    """The state at ``since`` in a scratch database (the partial restore's: an empty one given, or a new one
    on the live server, dropped afterwards), then ``compare(scratch)``: where the change log reaches T, the
    newest dump before T and the log replayed to T (`db restore --to`), so the diff is exactly what changed
    since; else the last backup that finished before T (its ID is its finishing time: a dump still running
    at T could hold the attacker's rows). Returns (the backup's manifest, what compare returned, T as
    replayed to or None)."""
    from tavari_dr.changes import pitr
    from tavari_dr.changes import replay as replay_lib
    from tavari_dr.database import backup as db
    from tavari_dr.database import partial
    from tavari_dr.database.manifest import BackupError, find_backup, id_time, list_backups

    try:  # planned before anything is written: a T the log cannot reach falls back to the dump
        exact = pitr.newest_dump_before(s3, bucket, since, verifier=verifier, tiers=tiers)
        replay_lib.plan(s3, bucket, exact, since, change_verifier, keep=False)  # the log's records: the change key
    except (BackupError, replay_lib.ReplayError) as err:
        log(f"the change log does not reach {since.isoformat(timespec='seconds')} ({err}): comparing with the "
            "last backup finished before it")
        exact = None
    if exact is not None:
        try:
            with partial.scratch(live_url, exact.backup_id, scratch_url, log) as scratch:
                restored, _outcome = pitr.restore_to(s3, bucket, since, scratch, verifier=verifier,
                                                     change_verifier=change_verifier, tiers=tiers,
                                                     log=log, only_missing_roles=True, **restore_options)
                wrong = list(restored.mismatches())
                if wrong:
                    raise BackupError(f"the scratch restore to {since.isoformat(timespec='seconds')} does not "
                                      f"match its backup and change log ({wrong[0]})")
                return exact, compare(scratch), since.isoformat(timespec="seconds")
        except replay_lib.ReplayError as err:  # e.g. the log does not yet reach past T (a capture behind)
            log(f"the change log cannot show the state at {since.isoformat(timespec='seconds')} ({err}): comparing "
                "with the last backup finished before it")
    usable = [b for b in list_backups(s3, bucket, tiers) if b.complete and not b.expired and not b.pre_restore
              and (id_time(b.backup_id) or since) < since]
    if not usable:
        raise BackupError(f"no complete backup in s3://{bucket}/dumps/ finished before {since.isoformat()}")
    chosen = usable[0].backup_id
    manifest = find_backup(s3, bucket, chosen, verifier=verifier, tiers=tiers).manifest  # refused if tampered
    with partial.scratch(live_url, chosen, scratch_url, log) as scratch:
        restored = db.restore(s3, bucket, chosen, scratch, verifier=verifier, tiers=tiers, log=log,
                              only_missing_roles=True, **restore_options)
        wrong = list(restored.mismatches())
        if wrong:
            raise BackupError(f"the scratch restore of {chosen} does not match its manifest ({wrong[0]})")
        return manifest, compare(scratch), None
