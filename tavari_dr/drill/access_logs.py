"""S3 server access logs as S3 would have delivered them (moto delivers none): the breach scenario's
requests, written in the documented record format to the bucket and prefix the invoice bucket's logging
names, so `tavari-dr breach scope` reads them exactly where it reads them in AWS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

ATTACKER_IP = "203.0.113.66"  # TEST-NET-3 (RFC 5737): never a real address
ATTACKER = "arn:aws:iam::123456789012:user/leaked-key"
OPERATIONS = {"get": ("REST.GET.OBJECT", "GET"), "put": ("REST.PUT.OBJECT", "PUT"),
              "delete": ("REST.DELETE.OBJECT", "DELETE")}


def record(bucket: str, when: datetime, action: str, key: str) -> str:
    """One record: the fields of "Amazon S3 server access log format", in their order."""
    operation, method = OPERATIONS[action]
    request_id = uuid.uuid4().hex[:16].upper()
    encoded = quote(key)
    return (f"{'0' * 64} {bucket} [{when.astimezone(UTC):%d/%b/%Y:%H:%M:%S} +0000] {ATTACKER_IP} {ATTACKER} "
            f"{request_id} {operation} {encoded} \"{method} /{bucket}/{encoded} HTTP/1.1\" 200 - 1024 1024 20 19 "
            f"\"-\" \"aws-cli/2.15.0\" - {request_id}= SigV4 TLS_AES_128_GCM_SHA256 AuthHeader "
            f"{bucket}.s3.eu-west-1.amazonaws.com TLSv1.3 - -")


def deliver(s3: Any, bucket: str, requests: list[tuple[datetime, str, str]]) -> str:
    """Write ``requests`` ((time, get|put|delete, key)) as one log object; returns its key."""
    logging = s3.get_bucket_logging(Bucket=bucket)["LoggingEnabled"]
    delivered = datetime.now(UTC)
    key = f"{logging.get('TargetPrefix', '')}{delivered:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4().hex[:16].upper()}"
    body = "\n".join(record(bucket, when, action, k) for when, action, k in requests) + "\n"
    s3.put_object(Bucket=logging["TargetBucket"], Key=key, Body=body.encode())
    return key
