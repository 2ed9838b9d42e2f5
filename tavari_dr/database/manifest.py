"""What a database backup is on S3, and how a reader knows it is the one the job wrote.

Layout of one backup (``<id>`` = ``20261125T020000Z-nightly``)::

    dumps/<tier>/<id>/roles.sql             pg_dumpall --roles-only --no-role-passwords (reserved roles commented out)
    dumps/<tier>/<id>/schema.dump           pg_dump -Fc --schema-only, Supabase's internal schemas excluded
    dumps/<tier>/<id>/internal_schema.dump  pg_dump -Fc --schema-only of auth and storage (for plain targets)
    dumps/<tier>/<id>/data/toc.dat, data/<n>.dat.<gz|zst>
                                            pg_dump -Fd -j N --data-only, auth and storage data included:
                                            a directory-format archive, one object per file (data_format
                                            "directory"; ADR 0014)
    dumps/<tier>/<id>/supabase_config.json  (optional) the Supabase project's configuration, no secrets
    dumps/<tier>/<id>/manifest.json         written LAST: no manifest = incomplete, never "latest"

Backups written before ADR 0014 hold ``data.dump`` (pg_dump -Fc --data-only) instead of ``data/``;
their manifests have no ``data_format`` and read as "custom". Both restore.

manifest.json (format 2) is an envelope: the manifest verbatim and its KMS signature
(tavari_dr.database.signing). The manifest pins each artifact's S3 version ID, size and sha256,
so a reader reads exactly what the job wrote. Every object is written once (If-None-Match: *)
into a versioned, Object-Lock bucket: a second version of any key, a delete marker before the
backup's retain-until date, an object the manifest does not name, or a manifest that does not
verify is tampering — readers refuse it (an operator may name the manifest version to trust) and
say what they found. Format 1 manifests (before signing) are read only where each key has exactly
one version and the manifest predates the signing key, and are reported as unsigned.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from tavari_dr.core.config import DatabaseBackupsConfig, Tier
from tavari_dr.database.signing import KmsVerifier, SignatureInvalid

# Every backup has these; the data is data.dump (custom format, before ADR 0014) or the files of data/.
SCHEMA_ARTIFACTS = ("roles.sql", "schema.dump", "internal_schema.dump")
ARTIFACTS = (*SCHEMA_ARTIFACTS, "data.dump")  # a custom-format ("custom") backup's artifacts
DATA_DIR = "data"
DIRECTORY_TOC = f"{DATA_DIR}/toc.dat"
# What pg_dump -Fd writes: toc.dat, a file per table's data (<dump id>.dat, compressed .gz/.lz4/.zst)
# and large objects (blobs.toc / blobs_<id>.toc, blob_<oid>.dat...). Anything else under data/ is a stranger.
DIRECTORY_FILE = re.compile(r"^data/(toc\.dat|\d+\.dat|blobs(_\d+)?\.toc|blob_\d+\.dat)(\.gz|\.lz4|\.zst)?$")
# Written beside the dump when there is one, pinned and signed like the rest; a restore of the database
# never needs it (tavari_dr.configbackup.supabase_config: the Supabase project's configuration).
OPTIONAL_ARTIFACTS = ("supabase_config.json",)
MANIFEST = "manifest.json"
FORMAT = "tavari-db-backup/2"
LEGACY_FORMAT = "tavari-db-backup/1"
ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
SIGNED, UNSIGNED_LEGACY = "signed", "unsigned (written before manifests were signed)"
# The reason (and so the ID's suffix) of the copy `db restore --force` takes of its target before it
# overwrites it: a copy of the database being replaced, not of the source, so never "latest" and never
# what the backup-age alarm counts. The ID is in the signed manifest, so the suffix cannot be forged
# onto a genuine nightly (tavari_dr.database.overwrite).
PRE_RESTORE = "pre-restore"
DEFAULT_TIERS = DatabaseBackupsConfig().tiers


class BackupError(RuntimeError):
    """A backup, verification or restore step failed; the message names the step."""


class BackupTampered(BackupError):
    """What a reader found that the backup job cannot have written; ``findings`` lists it."""

    def __init__(self, backup_id: str, findings: list[str], hint: str = "") -> None:
        self.backup_id, self.findings = backup_id, findings
        super().__init__(f"backup {backup_id} was tampered with: {'; '.join(findings)}" + (f". {hint}" if hint else ""))


@dataclass
class Manifest:
    backup_id: str
    reason: str
    tier: str
    database: str
    started_at: str
    finished_at: str
    server_version: str
    pg_dump_version: str
    snapshot: str
    data_schemas: list[str]
    excluded_schemas: list[str]
    tables: dict[str, int]
    artifacts: dict[str, dict[str, Any]]  # name -> {key, bytes, sha256, version_id}
    retain_until: str
    lock_mode: str
    format: str = FORMAT
    # "custom": data.dump (every backup before ADR 0014, whose manifests lack the field); "directory": data/.
    data_format: str = "custom"
    data_compression: str = "gzip"  # pg_dump --compress method of the data ("gzip" before ADR 0014)
    # Written since names may hold any character: each table's (schema, name) from the catalog, so no
    # reader splits "a.b".t on a dot. Older manifests lack it (table_pairs parses their quoted names).
    table_names: dict[str, list[str]] = field(default_factory=dict)
    # Materialized views in refresh (dependency) order: {schema, name, qualified, populated, rows}. None: a
    # manifest from before, whose views a restore refreshes all (it cannot know which had no data).
    matviews: list[dict[str, Any]] | None = None
    # Of auth and storage, those the source had (a plain PostgreSQL source has neither). None: a
    # manifest from before, when every source was a Supabase project.
    internal_schemas: list[str] | None = None
    # The dump's transaction snapshot as pg_current_snapshot() text ("xmin:xmax:xip,..."), read in the very
    # transaction whose exported snapshot pg_dump reads, and the WAL position read just before that
    # transaction began: a point-in-time restore replays exactly the logged transactions this snapshot
    # does not see (tavari_dr.changes.replay, ADR 0020). None: a manifest from before.
    xid_snapshot: str | None = None
    wal_lsn_before: str | None = None
    # The source server's clock read in that transaction after its snapshot was taken (microseconds): the
    # earliest point in time this dump serves. And the source's identity (backup.source_identity): the change
    # log it is replayed with must come from the same database. None: a manifest from before.
    snapshot_at: str | None = None
    source_identity: dict[str, Any] | None = None
    # The tavari-dr version that wrote the backup (tavari_dr.__version__), signed with the rest. None: from before.
    tool_version: str | None = None

    def table_pairs(self) -> dict[str, tuple[str, str]]:
        """Each table of ``tables`` as (schema, name)."""
        return {t: (self.table_names[t][0], self.table_names[t][1]) if t in self.table_names else split_qualified(t)
                for t in self.tables}

    @property
    def total_bytes(self) -> int:
        return sum(a["bytes"] for a in self.artifacts.values())

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "total_bytes": self.total_bytes}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a manifest is a JSON object")
        data.pop("total_bytes", None)
        return cls(**data)

    def required_artifacts(self) -> list[str]:
        """What a reader must find pinned: the schema artifacts and the data in this backup's format."""
        if self.data_format == "directory":
            files = sorted(n for n in self.artifacts if n.startswith(f"{DATA_DIR}/"))
            return [*SCHEMA_ARTIFACTS, DIRECTORY_TOC, *(f for f in files if f != DIRECTORY_TOC)]
        return list(ARTIFACTS)


def is_artifact_name(name: str) -> bool:
    """A name some backup writes (either data format, or an optional artifact beside the dump)."""
    return name in ARTIFACTS or name in OPTIONAL_ARTIFACTS or bool(DIRECTORY_FILE.match(name))


_IDENT = r'(?:"((?:[^"]|"")*)"|([^".]+))'
_QUALIFIED = re.compile(rf"{_IDENT}\.{_IDENT}")


def split_qualified(name: str) -> tuple[str, str]:
    """(schema, name) of a quote_ident-qualified name (what manifests before table_names recorded)."""
    found = _QUALIFIED.fullmatch(name)
    if not found:
        raise ValueError(f"{name!r} is not a schema-qualified table name")
    schema_q, schema, table_q, table = found.groups()
    return (schema if schema_q is None else schema_q.replace('""', '"'),
            table if table_q is None else table_q.replace('""', '"'))


# --------------------------------------------------------------------------- listing


@dataclass
class KeyHistory:
    """Every version and delete marker of one key, as ListObjectVersions reports them."""

    versions: list[dict[str, Any]] = field(default_factory=list)  # {VersionId, LastModified, Size}
    markers: list[dict[str, Any]] = field(default_factory=list)  # {VersionId, LastModified}


@dataclass
class BackupEntry:
    backup_id: str
    tier: str
    prefix: str
    history: dict[str, KeyHistory] = field(default_factory=dict)
    expires_at: datetime | None = None  # the tier's retention from the ID's time (lifecycle expires after)

    @property
    def complete(self) -> bool:
        return bool(self.history.get(MANIFEST, KeyHistory()).versions)

    @property
    def pre_restore(self) -> bool:
        """The safety copy of a restore's target (PRE_RESTORE), not a backup of the source."""
        return self.backup_id.partition("-")[2] == PRE_RESTORE

    @property
    def artifacts(self) -> list[str]:
        return sorted(self.history)

    @property
    def bytes(self) -> int:
        return sum(max((v["Size"] for v in h.versions), default=0) for h in self.history.values())

    @property
    def last_modified(self) -> datetime:
        return max(v["LastModified"] for h in self.history.values() for v in [*h.versions, *h.markers])

    @property
    def expired(self) -> bool:
        """Lifecycle expired it: every key's delete markers came at or after the retention end."""
        return self.expires_at is not None and all(
            h.markers and all(m["LastModified"] >= self.expires_at for m in h.markers) for h in self.history.values())

    def findings(self, expires_at: datetime | None = None) -> list[str]:
        """What the job cannot have written: second versions, early delete markers, strangers."""
        until = expires_at or self.expires_at
        found = []
        if until is None:
            found.append(f"{self.backup_id!r} is not a backup ID the job writes (<{ID_TIME_FORMAT}>-<reason>)")
        for name, h in sorted(self.history.items()):
            if name != MANIFEST and not is_artifact_name(name):
                found.append(f"{name}: an object no backup writes")
            if len(h.versions) > 1:
                found.append(f"{name}: {len(h.versions)} versions (" + ", ".join(
                    f"{v['VersionId']} at {v['LastModified']:%Y-%m-%d %H:%M:%S}" for v in h.versions) + ")")
            early = [m for m in h.markers if until is None or m["LastModified"] < until]
            for m in early:
                found.append(f"{name}: delete marker {m['VersionId']} at {m['LastModified']:%Y-%m-%d %H:%M:%S}, "
                             "before the backup's retention ends")
        return found


def id_time(backup_id: str) -> datetime | None:
    try:
        return datetime.strptime(backup_id.split("-", 1)[0], ID_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def tier_folders(s3: Any, bucket: str) -> list[str]:
    """The tiers that hold backups (``dumps/<tier>/``), configured or not: one request, whatever the history."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dumps/", Delimiter="/")
    return [p["Prefix"].split("/")[1] for page in pages for p in page.get("CommonPrefixes", [])]


def list_backups(s3: Any, bucket: str, tiers: tuple[Tier, ...] = DEFAULT_TIERS, *,
                 newer_than: Mapping[str, datetime] | None = None, backup_id: str | None = None) -> list[BackupEntry]:
    """Every backup folder, newest first, with every version and delete marker of each key: a
    listing of current objects alone would not see a delete marker hiding a manifest.
    ``newer_than`` (tier name -> time): only those tiers, and in each only the backups whose ID is
    after that time — IDs begin with their UTC time, so the listing starts there (KeyMarker) and
    reads a window, not the bucket's whole history. ``backup_id``: that backup's folder alone, in
    whichever tier holds it (a restore by ID costs the same however many backups the bucket keeps)."""
    days = {t.name: t.retention_days for t in tiers}
    entries: dict[str, BackupEntry] = {}
    if backup_id is not None:
        listings = [{"Prefix": f"dumps/{tier}/{backup_id}/"} for tier in tier_folders(s3, bucket)]
    elif newer_than is None:
        listings = [{"Prefix": "dumps/"}]
    else:
        listings = [{"Prefix": f"dumps/{tier}/",
                     "KeyMarker": f"dumps/{tier}/{since.astimezone(UTC).strftime(ID_TIME_FORMAT)}"}
                    for tier, since in newer_than.items()]
    pages = (page for listing in listings
             for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **listing))
    for page in pages:
        for kind, items in (("versions", page.get("Versions", [])), ("markers", page.get("DeleteMarkers", []))):
            for item in items:
                parts = item["Key"].split("/")
                if len(parts) < 4:
                    continue
                # dumps/<tier>/<id>/<name>, where a directory-format backup's names are data/<file>
                tier, folder, name = parts[1], parts[2], "/".join(parts[3:])
                entry = entries.get(folder)
                if entry is None:
                    started = id_time(folder)
                    entry = entries[folder] = BackupEntry(folder, tier, "/".join(parts[:3]), expires_at=(
                        started + timedelta(days=days[tier]) if started and tier in days else None))
                record = {"VersionId": item["VersionId"], "LastModified": item["LastModified"]}
                if kind == "versions":
                    record["Size"] = item["Size"]
                getattr(entry.history.setdefault(name, KeyHistory()), kind).append(record)
    for entry in entries.values():
        for h in entry.history.values():
            h.versions.sort(key=lambda v: v["LastModified"], reverse=True)
    return sorted(entries.values(), key=lambda e: e.backup_id, reverse=True)


# --------------------------------------------------------------------------- opening a backup


@dataclass
class OpenedBackup:
    """A backup whose manifest was verified, with the versions to read and what was found."""

    entry: BackupEntry
    manifest: Manifest
    trust: str  # SIGNED or UNSIGNED_LEGACY
    manifest_version: str
    findings: list[str] = field(default_factory=list)  # non-empty only where the operator named the version


def find_backup(s3: Any, bucket: str, which: str, *, verifier: KmsVerifier | None,
                manifest_version: str | None = None, tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> OpenedBackup:
    """``latest`` (the newest backup with a manifest, unless lifecycle expired it or it is a restore's
    pre-restore safety copy) or a backup ID.

    The newest folder with a manifest is *the* latest: if it was tampered with, that is refused,
    never skipped for an older one (which is what an attacker hiding the newest would want)."""
    backups = list_backups(s3, bucket, tiers, backup_id=None if which == "latest" else which)
    if which == "latest":
        complete = [b for b in backups if b.complete and not b.expired and not b.pre_restore]
        if not complete:
            safety = [b.backup_id for b in backups if b.complete and not b.expired and b.pre_restore]
            raise BackupError(f"no complete backup (with a manifest) in s3://{bucket}/dumps/" + (
                f"; only pre-restore safety copies ({', '.join(safety)}), which are read only by their ID"
                if safety else ""))
        entry = complete[0]
    else:
        matches = [b for b in backups if b.backup_id == which]
        if not matches:
            raise BackupError(f"no backup {which!r} in s3://{bucket}/dumps/")
        entry = matches[0]
        if not entry.complete:
            raise BackupError(f"backup {which} has no manifest: it never finished, so it cannot be trusted")
    return open_backup(s3, bucket, entry, verifier=verifier, manifest_version=manifest_version)


def _versions_hint(entry: BackupEntry) -> str:
    versions = entry.history[MANIFEST].versions
    return ("to read it anyway, name the manifest version to trust with --manifest-version (its signature is "
            "still checked): " + ", ".join(f"{v['VersionId']} ({v['LastModified']:%Y-%m-%d %H:%M:%S})"
                                           for v in versions))


def open_backup(s3: Any, bucket: str, entry: BackupEntry, *, verifier: KmsVerifier | None,
                manifest_version: str | None = None) -> OpenedBackup:
    if verifier is None:
        raise BackupError("no backup signing key to verify manifests with: pass --signing-key (the DatabaseBackups "
                          "stack's ManifestSigningKeyArn output) or --env")
    versions = entry.history[MANIFEST].versions
    if manifest_version is not None:
        chosen = next((v for v in versions if v["VersionId"] == manifest_version), None)
        if chosen is None:
            raise BackupError(f"{entry.prefix}/{MANIFEST} has no version {manifest_version!r}; it has "
                              + ", ".join(v["VersionId"] for v in versions))
    elif len(versions) == 1:
        chosen = versions[0]
    else:
        raise BackupTampered(entry.backup_id, entry.findings(), _versions_hint(entry))
    body = s3.get_object(Bucket=bucket, Key=f"{entry.prefix}/{MANIFEST}", VersionId=chosen["VersionId"])["Body"].read()
    manifest, trust = _read_manifest(body, chosen, entry, verifier)
    expires = _parse_time(manifest.retain_until)
    findings = entry.findings(expires)
    if trust == UNSIGNED_LEGACY:
        if findings:  # nothing pins the versions of an unsigned backup: only an untouched one can be read
            raise BackupTampered(entry.backup_id, findings, "an unsigned (format 1) backup is read only where each "
                                                            "key has exactly one version")
        for name, artifact in manifest.artifacts.items():
            artifact["version_id"] = entry.history[name].versions[0]["VersionId"] if name in entry.history else None
    _check_pins(entry, manifest)
    if findings and manifest_version is None:
        raise BackupTampered(entry.backup_id, findings, _versions_hint(entry))
    return OpenedBackup(entry, manifest, trust, chosen["VersionId"], findings)


def _read_manifest(body: bytes, version: dict[str, Any], entry: BackupEntry,
                   verifier: KmsVerifier) -> tuple[Manifest, str]:
    where = f"{MANIFEST} version {version['VersionId']}"
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BackupTampered(entry.backup_id, [f"{where} is not JSON"]) from None
    if isinstance(document, dict) and document.get("format") == FORMAT:
        payload = document.get("manifest")
        if not isinstance(payload, str):
            raise BackupTampered(entry.backup_id, [f"{where} has no signed manifest"])
        try:
            verifier.verify(payload.encode(), document.get("signature"))
        except SignatureInvalid as err:
            raise BackupTampered(entry.backup_id, [f"{where}: {err}"]) from None
        trust, text = SIGNED, payload
    elif isinstance(document, dict) and document.get("format") == LEGACY_FORMAT:
        # S3 times have one-second resolution: a manifest in the key's own second may be after it.
        cutover = verifier.cutover.replace(microsecond=0)
        if version["LastModified"] >= cutover:
            raise BackupTampered(entry.backup_id, [
                f"{where} is unsigned but was written at {version['LastModified']:%Y-%m-%d %H:%M:%S}, after the "
                f"signing key existed ({cutover:%Y-%m-%d %H:%M:%S}): the backup job signs every manifest since"])
        trust, text = UNSIGNED_LEGACY, body.decode()
    else:
        raise BackupTampered(entry.backup_id, [f"{where} is not a manifest of a known format ({FORMAT})"])
    try:
        manifest = Manifest.from_json(text)
    except (TypeError, ValueError) as err:
        raise BackupTampered(entry.backup_id, [f"{where} is not a manifest: {err}"]) from None
    if (manifest.backup_id, manifest.tier) != (entry.backup_id, entry.tier):
        # A genuine manifest copied into another folder (a replay) names the folder it was written for.
        raise BackupTampered(entry.backup_id, [f"{where} belongs to backup {manifest.tier}/{manifest.backup_id}"])
    return manifest, trust


def _check_pins(entry: BackupEntry, manifest: Manifest) -> None:
    problems = [f"{name}: an object the manifest does not name" for name in sorted(entry.history)
                if name.startswith(f"{DATA_DIR}/") and is_artifact_name(name) and name not in manifest.artifacts]
    for name in manifest.required_artifacts():
        artifact = manifest.artifacts.get(name)
        if artifact is None or artifact.get("key") != f"{entry.prefix}/{name}":
            problems.append(f"the manifest does not name {entry.prefix}/{name}")
            continue
        pinned = next((v for v in entry.history.get(name, KeyHistory()).versions
                       if v["VersionId"] == artifact.get("version_id")), None)
        if pinned is None:
            problems.append(f"{name}: the recorded version {artifact.get('version_id')} is gone")
        elif pinned["Size"] != artifact["bytes"]:
            problems.append(f"{name}: version {pinned['VersionId']} is {pinned['Size']} bytes, the manifest says "
                            f"{artifact['bytes']}")
    if problems:
        raise BackupTampered(entry.backup_id, problems)


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- reading an artifact


def _chunks(body: Any) -> Iterator[bytes]:
    yield from iter(lambda: body.read(1024 * 1024), b"")


def fetch_verified(s3: Any, bucket: str, manifest: Manifest, name: str, out: IO[bytes]) -> None:
    """Stream the recorded version of one artifact into ``out``, refusing it unless its size and
    sha256 are the manifest's."""
    artifact = manifest.artifacts[name]
    digest, size = hashlib.sha256(), 0
    response = s3.get_object(Bucket=bucket, Key=artifact["key"], VersionId=artifact["version_id"])
    for chunk in _chunks(response["Body"]):
        digest.update(chunk)
        size += len(chunk)
        out.write(chunk)
    if digest.hexdigest() != artifact["sha256"] or size != artifact["bytes"]:
        raise BackupError(f"{name}: sha256 {digest.hexdigest()} ({size} bytes) does not match the manifest's "
                          f"{artifact['sha256']} ({artifact['bytes']} bytes); the object is corrupted or was "
                          "replaced — refusing it")
