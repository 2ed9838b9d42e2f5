"""Peak memory of reading one server access log file for `breach scope` (tavari_dr.breach.logs): LINES
generated records (every hundredth an invoice read since T, the rest bucket listings), served as an S3
response body that makes its bytes as they are read, so only the reader's own memory is measured.

    .venv/bin/python benches/breach_logs.py [--lines 1000000] [--read-every 100]

Prints one JSON line: lines, events kept, seconds, and the growth of the process's peak resident set
(getrusage's ru_maxrss, after the imports and the setup) while the file was read. tests/test_breach.py
runs it at a million lines and bounds that growth (the issue's 150,000-line file peaked at 530 MiB when
it was read whole).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from botocore.response import StreamingBody  # noqa: E402

from tavari_dr.breach import logs  # noqa: E402

BUCKET, KEY = "invoices", "invoice-bucket/2026-11-30-12-00-00-GENERATED"


def record(when: datetime, operation: str, key: str) -> str:
    """One record in the documented format (as tests/test_breach.py writes them)."""
    return (f'owner {BUCKET} [{when:%d/%b/%Y:%H:%M:%S} +0000] 203.0.113.9 arn:aws:iam::123456789012:user/app REQ1 '
            f'{operation} {key} "GET /{BUCKET}/{key} HTTP/1.1" 200 - 1024 1024 12 11 "-" "aws-sdk/2" - hostid= '
            f'SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader {BUCKET}.s3.eu-west-1.amazonaws.com TLSv1.3 - -')


class GeneratedBody(io.RawIOBase):
    """A response body whose bytes are made as they are read."""

    def __init__(self, lines):
        self._lines, self._pending = lines, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if len(self._pending) < len(buffer):
            chunk, size = [self._pending], len(self._pending)
            for line in self._lines:
                chunk.append(line.encode() + b"\n")
                size += len(chunk[-1])
                if size >= len(buffer):
                    break
            self._pending = b"".join(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n


class OneLogFile:
    """The S3 calls read_access_logs makes, for one log file of the given lines."""

    def __init__(self, lines):
        self.lines = lines

    def get_bucket_logging(self, Bucket):  # noqa: N803 - boto3's parameter names
        return {"LoggingEnabled": {"TargetBucket": "logs", "TargetPrefix": "invoice-bucket/"}}

    def get_paginator(self, _name):
        return self

    def paginate(self, **_kwargs):
        return [{"Contents": [{"Key": KEY, "LastModified": datetime.now(UTC)}]}]

    def get_object(self, Bucket, Key):  # noqa: N803
        return {"Body": StreamingBody(io.BufferedReader(GeneratedBody(self.lines), 1 << 16), None)}


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--read-every", type=int, default=100)
    args = parser.parse_args()
    since = datetime(2026, 11, 30, 12, tzinfo=UTC)
    listing = record(since + timedelta(seconds=5), "REST.GET.BUCKET", "-")
    read = record(since + timedelta(seconds=5), "REST.GET.OBJECT", "invoices/x.pdf")
    lines = (read if n % args.read_every == 0 else listing for n in range(args.lines))
    before = _max_rss()
    started = time.perf_counter()
    source = logs.read_access_logs(OneLogFile(lines), BUCKET, since)
    seconds = time.perf_counter() - started
    malformed = getattr(source, "malformed", None)  # (absent before malformed records were counted)
    print(json.dumps({"lines": args.lines, "events": len(source.events), "malformed": getattr(malformed, "count", 0),
                      "read": source.read, "seconds": round(seconds, 1),
                      "peak_rss_growth_mib": round((_max_rss() - before) / 2**20, 1)}))


if __name__ == "__main__":
    main()
