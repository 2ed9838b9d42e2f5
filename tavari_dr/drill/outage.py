"""The region-outage scenario's emulation: what the DR region holds when the primary goes down, and
the outage itself.

moto never replicates, and its copies get new version IDs where S3 replication keeps the source's: the
backups' replica is filled by ``replicate_keeping_versions`` through the drill's moto server, which keeps
them for a copy that asks (tavari_dr.drill.moto_server), so the manifests' pinned versions are found in
the replica as they would be. The outage is a file every command the drill starts reads
(tavari_dr.core.aws.OUTAGE_ENV): the primary region and the buckets that live there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tavari_dr.core.aws import Outage

# A copy that carries it keeps the source's version ID (the drill's moto server, as S3 replication does).
REPLICATE_HEADER = "x-tavari-drill-replicate"


def replicate_keeping_versions(s3: Any, source: str, destination: str) -> int:
    """Copy every version of ``source`` not yet in ``destination``, oldest first, keeping version IDs
    (and Object Lock retention, as S3 replication does). Returns how many were copied."""
    def add_header(request: Any, **_: Any) -> None:
        request.headers[REPLICATE_HEADER] = "true"
        # moto asks a write into a bucket with default retention for a checksum header, a copy too (S3's
        # replication writes the replica itself, without one).
        request.headers["x-amz-sdk-checksum-algorithm"] = "SHA256"

    s3.meta.events.register("before-sign.s3.CopyObject", add_header)
    try:
        there = {(v["Key"], v["VersionId"]) for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=destination) for v in page.get("Versions", [])}
        versions = sorted((v["LastModified"], v["Key"], v["VersionId"]) for page in s3.get_paginator(
            "list_object_versions").paginate(Bucket=source) for v in page.get("Versions", []))
        copied = 0
        for _, key, version_id in versions:
            if (key, version_id) in there:
                continue
            s3.copy_object(Bucket=destination, Key=key, CopySource={"Bucket": source, "Key": key,
                                                                    "VersionId": version_id})
            head = s3.head_object(Bucket=source, Key=key, VersionId=version_id)
            if head.get("ObjectLockMode"):  # replication carries the retention over
                s3.put_object_retention(Bucket=destination, Key=key, VersionId=version_id, Retention={
                    "Mode": head["ObjectLockMode"], "RetainUntilDate": head["ObjectLockRetainUntilDate"]})
            copied += 1
        return copied
    finally:
        s3.meta.events.unregister("before-sign.s3.CopyObject", add_header)


def public_key(kms: Any, key_id: str, path: Path) -> Path:
    """The peacetime export of the signing key's public key (`aws kms get-public-key`), DER."""
    path.write_bytes(kms.get_public_key(KeyId=key_id)["PublicKey"])
    return path


def declare(path: Path, region: str, buckets: set[str]) -> Path:
    """Write the outage every command started with TAVARI_DR_DRILL_OUTAGE=path meets."""
    Outage(region, frozenset(buckets)).write(path)
    return path


def buckets_in(s3: Any, region: str) -> set[str]:
    """The emulator's buckets whose location is ``region`` (moto's buckets are global)."""
    found = set()
    for bucket in s3.list_buckets()["Buckets"]:
        location = s3.get_bucket_location(Bucket=bucket["Name"]).get("LocationConstraint") or "us-east-1"
        if location == region:
            found.add(bucket["Name"])
    return found
