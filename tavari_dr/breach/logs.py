"""What a data diff cannot see: who read (or wrote) the invoice bucket's objects since T.

Two sources, each read where it is kept, each reported as read or not (and why):

- S3 server access logs of the invoice bucket, in the access-log bucket under the bucket's own logging
  prefix (GetBucketLogging names both). The documented record format ("Amazon S3 server access log
  format"): space-separated fields, some in quotes, the time in brackets. No maintained parser is
  published (PyPI's are a decade old or specific to one project), so the tokenizer is the documented
  grammar's one regular expression. Each log file is read line by line from the S3 response (a busy
  bucket's file holds hundreds of thousands of records: never whole in memory), and a line that is not
  a record, or whose time does not read, is counted and reported, never the end of the scope.
- CloudTrail data events (object reads), in the trail's S3 bucket as gzipped JSON: LookupEvents
  returns management events only, never data events. Whether the trail logs the invoice bucket's reads
  at all is read from its event selectors first; if it does not, the source is reported as missing.
  A file is one JSON document (a delivery every few minutes): it is decompressed from the response
  stream and parsed whole; a record whose time does not read is counted, like a malformed log line.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

# Field order of the documented format (later fields were appended over the years; a record may end early).
FIELDS = ("bucket_owner", "bucket", "time", "remote_ip", "requester", "request_id", "operation", "key",
          "request_uri", "http_status", "error_code", "bytes_sent", "object_size", "total_time",
          "turn_around_time", "referrer", "user_agent", "version_id", "host_id", "signature_version",
          "cipher_suite", "authentication_type", "host_header", "tls_version", "access_point_arn", "acl_required")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|\S+')
# What touches an object's content: reads (exfiltration) and writes (tampering).
READS = ("REST.GET.OBJECT", "REST.COPY.OBJECT_GET", "REST.HEAD.OBJECT")
WRITES = ("REST.PUT.OBJECT", "REST.POST.UPLOAD", "REST.COPY.OBJECT", "REST.DELETE.OBJECT",
          "REST.POST.MULTI_OBJECT_DELETE")
TRAIL_READS = ("GetObject", "HeadObject", "CopyObject", "SelectObjectContent", "GetObjectAttributes")
TRAIL_WRITES = ("PutObject", "DeleteObject", "DeleteObjects", "CompleteMultipartUpload", "RestoreObject")


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One request that touched an object."""

    source: str  # access-log, cloudtrail
    time: datetime
    action: str  # read, write
    operation: str
    key: str
    requester: str
    remote_ip: str
    status: str

    def document(self) -> dict[str, Any]:
        return {"source": self.source, "time": self.time.isoformat(timespec="seconds"), "action": self.action,
                "operation": self.operation, "key": self.key, "requester": self.requester,
                "remote_ip": self.remote_ip, "status": self.status}


@dataclass
class Malformed:
    """Lines (or trail records) that could not be read: how many, and where the first was (file and line;
    not its text, which may hold a requester's identity)."""

    count: int = 0
    first: str | None = None

    def add(self, where: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = where

    def __str__(self) -> str:
        return f"{self.count} malformed record(s) skipped (first: {self.first})" if self.count else ""


@dataclass
class Source:
    name: str
    read: bool
    detail: str
    events: list[ObjectEvent] = field(default_factory=list)
    malformed: Malformed = field(default_factory=Malformed)

    def document(self) -> dict[str, Any]:
        return {"source": self.name, "read": self.read, "detail": self.detail, "events": len(self.events),
                "malformed_records": self.malformed.count, "first_malformed": self.malformed.first}


def parse_access_log_line(line: str) -> dict[str, str] | None:
    """One record as field -> text ('-' kept), or None for a line that is not a record."""
    tokens = _TOKEN.findall(line.strip())
    if len(tokens) < 10 or not tokens[2].startswith("["):
        return None
    record = {}
    for name, token in zip(FIELDS, tokens, strict=False):
        if token.startswith("[") or (token.startswith('"') and len(token) >= 2):
            token = token[1:-1]
        record[name] = token
    return record


def access_log_time(text: str) -> datetime:
    return datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)


def access_log_events(lines: Iterable[str], bucket: str, since: datetime, malformed: Malformed | None = None,
                      where: str = "line") -> list[ObjectEvent]:
    """The object requests since ``since`` in ``lines``; a line that is not a record, or whose time does
    not read, is counted in ``malformed`` (as ``where``:number) and skipped."""
    events = []
    malformed = malformed if malformed is not None else Malformed()
    for number, line in enumerate(lines, 1):
        # The fields before the first quoted one hold no spaces but the time's: a record of another
        # bucket or of no object request is passed over without the full tokenizer (most of a busy log).
        head = line.split(None, 8)
        if len(head) == 9 and head[2].startswith("[") and (head[1] != bucket or (
                head[7] not in READS and head[7] not in WRITES)):
            continue
        record = parse_access_log_line(line)
        if record is None:
            if line.strip():
                malformed.add(f"{where}:{number}")
            continue
        if record["bucket"] != bucket:
            continue
        operation = record["operation"]
        action = "read" if operation in READS else "write" if operation in WRITES else None
        if action is None or record.get("key", "-") == "-":
            continue
        try:
            when = access_log_time(record["time"])
        except ValueError:
            malformed.add(f"{where}:{number}")
            continue
        if when < since:
            continue
        # Interned: a busy log repeats the same requester, address and status a million times.
        events.append(ObjectEvent("access-log", when, action, sys.intern(operation), unquote(record["key"]),
                                  sys.intern(record["requester"]), sys.intern(record["remote_ip"]),
                                  sys.intern(record["http_status"])))
    return events


def stream_lines(body: Any, key: str) -> Iterator[str]:
    """The lines of an S3 object's body, read as they arrive (gunzipped where the key says gzip)."""
    if key.endswith(".gz"):
        yield from io.TextIOWrapper(gzip.GzipFile(fileobj=body), encoding="utf-8", errors="replace")
        return
    for raw in body.iter_lines(chunk_size=1 << 16):
        yield raw.decode("utf-8", errors="replace")


def _objects_since(s3: Any, bucket: str, prefix: str, since: datetime) -> Iterable[str]:
    """Keys under ``prefix`` written at or after ``since`` (a log file is delivered after its records)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["LastModified"] >= since:
                yield item["Key"]


def read_access_logs(s3: Any, invoice_bucket: str, since: datetime) -> Source:
    from botocore.exceptions import BotoCoreError, ClientError

    name = "S3 server access logs"
    try:
        logging = s3.get_bucket_logging(Bucket=invoice_bucket).get("LoggingEnabled")
        if not logging:
            return Source(name, False, f"{invoice_bucket} has no server access logging")
        target, prefix = logging["TargetBucket"], logging.get("TargetPrefix", "")
        events: list[ObjectEvent] = []
        malformed = Malformed()
        files = 0
        for key in _objects_since(s3, target, prefix, since):
            body = s3.get_object(Bucket=target, Key=key)["Body"]
            events += access_log_events(stream_lines(body, key), invoice_bucket, since, malformed, where=key)
            files += 1
    except (ClientError, BotoCoreError, OSError) as err:
        return Source(name, False, f"could not read them: {err}")
    events.sort(key=lambda e: e.time)
    return Source(name, True, f"s3://{target}/{prefix}: {files} log file(s) delivered since T, {len(events)} "
                              "object request(s)" + (f", {malformed}" if malformed.count else "")
                  + "; S3 delivers them on a best-effort basis, usually within hours", events, malformed)


def _logs_reads(selectors: dict[str, Any], bucket_arn: str) -> bool:
    """Whether the trail's event selectors log read data events of the bucket's objects."""
    for selector in selectors.get("EventSelectors") or []:
        if selector.get("ReadWriteType", "All") not in ("All", "ReadOnly"):
            continue
        for resource in selector.get("DataResources", []):
            if resource.get("Type") == "AWS::S3::Object" and any(
                    value in ("arn:aws:s3", "arn:aws:s3:::") or value.startswith(f"{bucket_arn}/")
                    for value in resource.get("Values", [])):
                return True
    for selector in selectors.get("AdvancedEventSelectors") or []:
        fields = {f["Field"]: f for f in selector.get("FieldSelectors", [])}
        if fields.get("eventCategory", {}).get("Equals") != ["Data"] or \
                fields.get("resources.type", {}).get("Equals") != ["AWS::S3::Object"]:
            continue
        if fields.get("readOnly", {}).get("Equals") == ["false"]:
            continue
        arns = fields.get("resources.ARN")
        if arns is None or any(v.startswith(f"{bucket_arn}/") or v == f"{bucket_arn}/"
                               for v in arns.get("StartsWith", []) + arns.get("Equals", [])):
            return True
    return False


def trail_events(records: Iterable[dict[str, Any]], bucket: str, since: datetime, malformed: Malformed | None = None,
                 where: str = "record") -> list[ObjectEvent]:
    events = []
    malformed = malformed if malformed is not None else Malformed()
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            malformed.add(f"{where}#{number}")
            continue
        if record.get("eventSource") != "s3.amazonaws.com":
            continue
        parameters = record.get("requestParameters") or {}
        if parameters.get("bucketName") != bucket or not parameters.get("key"):
            continue
        name = record.get("eventName", "")
        action = "read" if name in TRAIL_READS else "write" if name in TRAIL_WRITES else None
        if action is None:
            continue
        try:
            when = datetime.fromisoformat(str(record["eventTime"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError("no time zone")
        except (KeyError, ValueError):
            malformed.add(f"{where}#{number}")
            continue
        if when < since:
            continue
        identity = record.get("userIdentity") or {}
        events.append(ObjectEvent("cloudtrail", when, action, name, parameters["key"],
                                  identity.get("arn") or identity.get("principalId") or "-",
                                  record.get("sourceIPAddress", "-"), record.get("errorCode") or "ok"))
    return events


def read_trail(cloudtrail: Any, s3: Any, trail_arn: str, invoice_bucket: str, since: datetime) -> Source:
    from botocore.exceptions import BotoCoreError, ClientError

    name = "CloudTrail data events"
    try:
        trails = cloudtrail.describe_trails(trailNameList=[trail_arn])["trailList"]
        if not trails:
            return Source(name, False, f"no trail {trail_arn}")
        trail = trails[0]
        if not _logs_reads(cloudtrail.get_event_selectors(TrailName=trail_arn), f"arn:aws:s3:::{invoice_bucket}"):
            return Source(name, False, f"the trail {trail_arn} logs no read data events of {invoice_bucket} (its event "
                                       "selectors): object reads are not recorded there")
        bucket, prefix = trail["S3BucketName"], trail.get("S3KeyPrefix") or ""
        root = f"{prefix}/AWSLogs/" if prefix else "AWSLogs/"
        events: list[ObjectEvent] = []
        malformed = Malformed()
        files = 0
        for key in _objects_since(s3, bucket, root, since):
            if not key.endswith(".json.gz") or "/CloudTrail/" not in key:
                continue  # digests (CloudTrail-Digest/) and other deliveries
            with gzip.GzipFile(fileobj=s3.get_object(Bucket=bucket, Key=key)["Body"]) as stream:
                try:
                    document = json.load(stream)
                    records = document.get("Records", [])
                except (ValueError, AttributeError, EOFError, OSError, zlib.error):
                    malformed.add(key)  # one file that does not read is counted, not the end of the source
                    continue
            events += trail_events(records, invoice_bucket, since, malformed, where=key)
            files += 1
    except (ClientError, BotoCoreError, OSError) as err:
        return Source(name, False, f"could not read them: {err}")
    events.sort(key=lambda e: e.time)
    return Source(name, True, f"s3://{bucket}/{root}: {files} log file(s) since T, {len(events)} object "
                              "request(s)" + (f", {malformed}" if malformed.count else "")
                  + " (LookupEvents returns no data events: read from the trail's bucket)", events, malformed)
