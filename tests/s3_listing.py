"""A model of one bucket's version history and the ListObjectVersions documents S3 (or moto) would
send for it, served to a real botocore client through its ``before-send`` hook.

S3 lists keys in order and each key's versions and delete markers newest first, interleaved, in
one XML document (the ListObjectVersions response syntax). moto pages the same order (it sorts by
millisecond) but lists every Version element of a page, then every DeleteMarker element, with
whole-second times. Both are rendered here, so that the planner's reading of the document can be
checked against the model.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

import boto3
from botocore.awsrequest import AWSResponse

BASE = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)
NS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True)
class Event:
    key: str
    delete: bool
    second: int      # LastModified = BASE + second (whole seconds, as S3 lists them)
    version_id: str
    size: int = 0
    multipart: bool = False

    @property
    def when(self) -> datetime:
        return BASE + timedelta(seconds=self.second)


@dataclass
class Model:
    """Events in the order S3 applied them (seconds never go back)."""

    events: list[Event] = field(default_factory=list)

    def add(self, key: str, *, delete: bool = False, second: int, multipart: bool = False) -> Event:
        n = len(self.events) + 1
        event = Event(key, delete, second, f"v{n:03}", 0 if delete else n, multipart)
        self.events.append(event)
        return event

    def keys(self) -> list[str]:
        return sorted({e.key for e in self.events})

    def of(self, key: str) -> list[Event]:
        return [e for e in self.events if e.key == key]

    def state_at(self, key: str, when: datetime) -> Event | None:
        """S3's semantics: the last entry applied at or before ``when``."""
        before = [e for e in self.of(key) if e.when <= when]
        return before[-1] if before else None

    def in_t_second(self, key: str, when: datetime) -> bool:
        """Was ``key`` written in ``when``'s own second? Then whether that came before ``when`` is unknown
        (whole-second times): a restore must report the key ambiguous (restore.in_second_of)."""
        second = when.replace(microsecond=0)
        return any(e.when == second for e in self.of(key))

    def expected_actions(self, when: datetime) -> dict[str, tuple[str, str | None]]:
        """key -> (action, version) of a restore in place to ``when`` (every version has its own size,
        so no two versions have the same content)."""
        out: dict[str, tuple[str, str | None]] = {}
        for key in self.keys():
            at_t, now = self.state_at(key, when), self.of(key)[-1]
            if at_t is None or at_t.delete:
                if not now.delete:
                    out[key] = ("delete-marker", None)
            elif now.version_id != at_t.version_id:
                out[key] = ("copy", at_t.version_id)
        return out

    # ----------------------------------------------------------------------- listings

    def s3_order(self) -> list[Event]:
        """Keys in order, each newest first (the order S3 applied them, reversed)."""
        return [e for key in self.keys() for e in reversed(self.of(key))]


def _entry_xml(e: Event, latest: bool) -> str:
    when = e.when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    common = (f"<Key>{escape(e.key)}</Key><VersionId>{e.version_id}</VersionId>"
              f"<IsLatest>{'true' if latest else 'false'}</IsLatest><LastModified>{when}</LastModified>")
    if e.delete:
        return f"<DeleteMarker>{common}</DeleteMarker>"
    etag = f"&quot;{e.version_id:0>32}{'-2' if e.multipart else ''}&quot;"
    return (f"<Version>{common}<ETag>{etag}</ETag><Size>{e.size}</Size>"
            f"<StorageClass>STANDARD</StorageClass></Version>")


def render_pages(entries: list[Event], cuts: list[int], *, interleave: bool, wrong_is_latest: bool = False,
                 bucket: str = "bkt") -> list[bytes]:
    """ListVersionsResult documents for ``entries`` split after each index in ``cuts``. With
    ``interleave`` False, each page lists its Version elements first (moto). ``wrong_is_latest``
    marks the first entry of each key on every page IsLatest, as moto does on a second page."""
    bounds = sorted({c for c in cuts if 0 < c < len(entries)}) + [len(entries)]
    pages, start = [], 0
    for end in bounds:
        page = entries[start:end]
        seen: set[str] = set()
        parts = []
        for i, e in enumerate(page):
            first_on_page = e.key not in seen
            seen.add(e.key)
            first_overall = entries.index(e) == min(j for j, o in enumerate(entries) if o.key == e.key)
            parts.append((e, (first_on_page if wrong_is_latest else first_overall), i))
        if not interleave:
            parts.sort(key=lambda p: (p[0].delete, p[2]))
        truncated = end < len(entries)
        last = page[-1]
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListVersionsResult xmlns="{NS}"><Name>{bucket}</Name>'
                f"<Prefix></Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>"
                f"<MaxKeys>{len(page)}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
                + (f"<NextKeyMarker>{escape(last.key)}</NextKeyMarker>"
                   f"<NextVersionIdMarker>{last.version_id}</NextVersionIdMarker>" if truncated else "")
                + "".join(_entry_xml(e, latest) for e, latest, _ in parts) + "</ListVersionsResult>")
        pages.append(body.encode())
        start = end
    return pages


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kwargs):
        yield self.body


class ListingStub:
    """A real boto3 S3 client whose requests never leave the process: GetBucketVersioning answers
    Enabled, ListObjectVersions answers the given documents page by page (following KeyMarker and
    VersionIdMarker), anything else is a 501 (the planner must not need it)."""

    def __init__(self, pages: list[bytes], markers: list[tuple[str, str]]) -> None:
        self.pages, self.markers = pages, markers  # markers[i]: the last (key, version) of page i
        self.requests: list[str] = []
        self.client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="test",
                                   aws_secret_access_key="test")  # noqa: S106 (never sent anywhere)
        self.client.meta.events.register("before-send.s3", self._answer)

    def _answer(self, request, **_kwargs):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query, keep_blank_values=True)
        self.requests.append(request.url)
        if request.method == "GET" and "versioning" in query:
            body = f'<VersioningConfiguration xmlns="{NS}"><Status>Enabled</Status></VersioningConfiguration>'
            return AWSResponse(request.url, 200, {}, _Raw(body.encode()))
        if request.method == "GET" and "versions" in query:
            marker = (query.get("key-marker", [""])[0], query.get("version-id-marker", [""])[0])
            index = 0 if not marker[0] else self.markers.index(marker) + 1
            return AWSResponse(request.url, 200, {}, _Raw(self.pages[index]))
        return AWSResponse(request.url, 501, {}, _Raw(b"<Error><Code>NotImplemented</Code></Error>"))


def stub_for(entries: list[Event], cuts: list[int], *, interleave: bool, wrong_is_latest: bool = False) -> ListingStub:
    pages = render_pages(entries, cuts, interleave=interleave, wrong_is_latest=wrong_is_latest)
    bounds = sorted({c for c in cuts if 0 < c < len(entries)}) + [len(entries)]
    return ListingStub(pages, [(entries[b - 1].key, entries[b - 1].version_id) for b in bounds])
