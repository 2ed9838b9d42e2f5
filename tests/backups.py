"""Database backups for tests that need one on moto but no PostgreSQL: the real format (manifest,
envelope, signature by a moto KMS key), with small made-up artifacts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import boto3
from moto import mock_aws

from tavari_dr.core.aws import EMULATOR_CONFIG
from tavari_dr.database.manifest import (
    ARTIFACTS,
    DIRECTORY_TOC,
    FORMAT,
    LEGACY_FORMAT,
    MANIFEST,
    SCHEMA_ARTIFACTS,
    Manifest,
)
from tavari_dr.database.signing import KmsSigner, KmsVerifier, envelope

# A directory-format backup's artifacts (ADR 0014): the schema artifacts and the files of data/.
DIRECTORY_ARTIFACTS = (*SCHEMA_ARTIFACTS, DIRECTORY_TOC, "data/3001.dat.gz", "data/3002.dat.gz")


@contextmanager
def backup_s3(bucket: str, region: str = "eu-west-1") -> Iterator[object]:
    """moto with the Object-Lock backup bucket and the reports bucket (where restores leave their
    audit records); the client speaks to it as the CLI would."""
    with mock_aws():
        client = boto3.client("s3", region_name=region, config=EMULATOR_CONFIG)
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region},
                             ObjectLockEnabledForBucket=True)
        client.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": region})
        yield client


class Signing:
    """The backup job's signing key (kms:Sign) and the readers' view of it (kms:Verify), on moto."""

    def __init__(self, region: str = "eu-west-1") -> None:
        kms = boto3.client("kms", region_name=region)
        self.arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
        self.signer, self.verifier = KmsSigner(kms, self.arn), KmsVerifier(kms, self.arn)


def backup_id(finished: datetime, reason: str = "nightly") -> str:
    return finished.strftime("%Y%m%dT%H%M%SZ") + f"-{reason}"


def manifest_for(prefix: str, finished: datetime, artifacts: dict[str, dict], tier: str = "daily",
                 rows: int = 1, days: int = 35) -> Manifest:
    directory = DIRECTORY_TOC in artifacts
    return Manifest(
        backup_id=prefix.rsplit("/", 1)[-1], reason="nightly", tier=tier, database="postgres",
        started_at=finished.isoformat(), finished_at=finished.isoformat(), server_version="15.8",
        pg_dump_version="17", snapshot="x", data_schemas=["public"], excluded_schemas=[], tables={"public.t": rows},
        artifacts=artifacts, retain_until=(finished + timedelta(days=days)).isoformat(), lock_mode="GOVERNANCE",
        data_format="directory" if directory else "custom", data_compression="zstd" if directory else "gzip")


def put_artifacts(s3, bucket: str, prefix: str, data: bytes = b"PGDMP data",
                  names: tuple[str, ...] = ARTIFACTS) -> dict[str, dict]:
    artifacts = {}
    for name in names:
        body = data + name.encode()
        version = s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=body)["VersionId"]
        artifacts[name] = {"key": f"{prefix}/{name}", "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                           "version_id": version}
    return artifacts


def signed_body(manifest: Manifest, signer: KmsSigner) -> bytes:
    payload = manifest.to_json().encode()
    return envelope(payload, signer.sign(payload), FORMAT)


def legacy_body(manifest: Manifest) -> bytes:
    """A format-1 manifest, as the job wrote before signing: no envelope, no version IDs."""
    data = json.loads(manifest.to_json())
    data["format"] = LEGACY_FORMAT
    for artifact in data["artifacts"].values():
        artifact.pop("version_id", None)
    return json.dumps(data).encode()


def write_backup(s3, bucket: str, signer: KmsSigner, *, finished: datetime, tier: str = "daily",
                 data: bytes = b"PGDMP data", reason: str = "nightly", names: tuple[str, ...] = ARTIFACTS) -> Manifest:
    prefix = f"dumps/{tier}/{backup_id(finished, reason)}"
    manifest = manifest_for(prefix, finished, put_artifacts(s3, bucket, prefix, data, names), tier)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{MANIFEST}", Body=signed_body(manifest, signer))
    return manifest

