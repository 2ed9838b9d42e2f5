"""A record of every real restore, in the reports bucket under ``audit/``.

Who (the caller's ARN, from STS), when, from which backup or point in time, to where, and the
outcome. Each record is a new object (If-None-Match: *) in a versioned bucket whose policy denies
deleting anything under ``audit/`` and overwriting without If-None-Match, so a job role that may
write reports cannot erase the trace of a restore.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tavari_dr import __version__
from tavari_dr.core import s3sink

PREFIX = "audit/"
FORMAT = "tavari-restore-audit/1"


def caller_arn(sts: Any) -> str:
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


@dataclass
class AuditRecord:
    """One restore; ``write`` it once its outcome is known (a refusal or a failure is an outcome)."""

    action: str  # db_restore, bucket_restore, bucket_batch_restore
    caller: str
    source: dict[str, Any]  # bucket and backup ID, or bucket and point in time
    target: dict[str, Any]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    details: dict[str, Any] = field(default_factory=dict)

    def document(self, outcome: str, finished_at: datetime) -> dict[str, Any]:
        return {"format": FORMAT, "action": self.action, "caller": self.caller, "source": self.source,
                "target": self.target, "started_at": self.started_at.isoformat(timespec="seconds"),
                "finished_at": finished_at.isoformat(timespec="seconds"), "outcome": outcome,
                "details": self.details, "tool_version": __version__}

    def write(self, s3: Any, bucket: str, outcome: str, *, finished_at: datetime | None = None) -> str:
        finished = finished_at or datetime.now(UTC)
        key = (f"{PREFIX}{self.action}/{self.started_at:%Y/%m/%d}/{self.started_at:%Y%m%dT%H%M%SZ}-"
               f"{uuid.uuid4().hex[:12]}.json")
        body = json.dumps(self.document(outcome, finished), indent=1, sort_keys=True, default=str).encode()
        s3sink.put_new(s3, bucket, key, body, ContentType="application/json", ChecksumAlgorithm="SHA256")
        return key
