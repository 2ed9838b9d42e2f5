"""The code's version (CONTRIBUTING.md, "Versions"): from git tags by setuptools-scm at build time, read at
run time without it (tavari_dr.__version__), and stamped, under their signatures, into the records the
backups write: dump manifests, change segments and base records. A record from before the field keeps
verifying and reading (old backups must keep restoring); a record whose version was altered does not."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tavari_dr
from tavari_dr.changes.segment import (
    BASE_FORMAT,
    Base,
    Header,
    SegmentError,
    open_segment,
    read_base,
    write_base,
    write_segment,
)
from tavari_dr.database import backup as d
from tavari_dr.database.manifest import FORMAT, MANIFEST
from tavari_dr.database.signing import envelope
from tests.backups import Signing, backup_s3, manifest_for, put_artifacts

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
BUCKET = "tavari-db-backups"
FINISHED = datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
STAMP = "1.2.3.dev4+g0123abcd"


# --------------------------------------------------------------------------- where the version comes from


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                    "-c", "commit.gpgsign=false", *args], check=True, capture_output=True)


def _version_of(repo: Path) -> str:
    """What pyproject.toml's [tool.setuptools_scm] makes of ``repo`` (the project's own configuration)."""
    shutil.copy(ROOT / "pyproject.toml", repo / "pyproject.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETUPTOOLS_SCM_PRETEND")}
    done = subprocess.run([sys.executable, "-m", "setuptools_scm", "--root", str(repo)], cwd=repo,
                          capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


def test_the_version_is_the_tag_and_a_clone_without_tags_or_git_still_has_one(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    assert _version_of(repo) == "0.0.0"  # no git at all: fallback_version
    _git(repo, "init", "-q")
    _git(repo, "add", "pyproject.toml")
    _git(repo, "commit", "-q", "-m", "one")
    (repo / "a").write_text("a")
    _git(repo, "add", "a")
    _git(repo, "commit", "-q", "-m", "two")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=8", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    # What CI's clean clone of main reads while it has no tag: the commit count since the first, and the commit.
    assert re.fullmatch(rf"0\.0\.1\.dev2\+g{head}[0-9a-f]*", _version_of(repo)), _version_of(repo)
    _git(repo, "tag", "v0.3.0")
    assert _version_of(repo) == "0.3.0"
    (repo / "a").write_text("b")
    _git(repo, "commit", "-q", "-am", "three")
    assert re.fullmatch(r"0\.3\.1\.dev1\+g[0-9a-f]+", _version_of(repo)), _version_of(repo)


def _import_version(tree: Path) -> str:
    """tavari_dr.__version__ in a clean interpreter that sees only ``tree`` (no installed tavari-dr)."""
    done = subprocess.run([sys.executable, "-I", "-S", "-c",
                           f"import sys; sys.path[:0] = [{str(tree)!r}]\n"
                           "import tavari_dr; print(tavari_dr.__version__)"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_bundle_reads_its_version_module_and_a_bare_copy_says_unknown(tmp_path):
    (tmp_path / "tavari_dr").mkdir()
    shutil.copy(ROOT / "tavari_dr" / "__init__.py", tmp_path / "tavari_dr" / "__init__.py")
    assert _import_version(tmp_path) == tavari_dr.UNKNOWN_VERSION  # neither bundled nor installed
    (tmp_path / "tavari_dr" / "_version.py").write_text(f"version = {STAMP!r}\n")
    assert _import_version(tmp_path) == STAMP


def test_the_synth_stamps_the_checkouts_version():
    from backup_constructs.python_function import code_version

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    version = code_version()
    assert version == _version_of_checkout()
    # On a tag: that tag's version; past it or with no tag, the commit is in the version.
    assert f"+g{head[:7]}" in version or not re.search(r"dev|\+", version), (version, head)


def _version_of_checkout() -> str:
    return subprocess.run([sys.executable, "-m", "setuptools_scm"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


# --------------------------------------------------------------------------- the version under the signatures


@pytest.fixture
def s3():
    with backup_s3(BUCKET, REGION) as client:
        client.create_bucket(Bucket="copy", CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket="copy", VersioningConfiguration={"Status": "Enabled"})
        yield client


def _base(tool_version: str | None) -> Base:
    return Base(base_id=f"{FINISHED:%Y%m%dT%H%M%SZ}-{0x100:016X}", slot="tavari_backup", publication="tavari_backup",
                created_at=FINISHED.isoformat(), start_lsn="0/100", reason="first start", schema_fingerprint="f",
                schema={}, tool_version=tool_version)


def _altered(document: dict, field: str, old: str, new: str) -> bytes:
    """The record with its version changed in the signed text, the signature kept."""
    assert '"tool_version":' in document[field] and old in document[field]
    return json.dumps({**document, field: document[field].replace(old, new)}).encode()


def test_a_base_record_carries_the_version_signed_and_one_from_before_still_reads(s3):
    signing = Signing()
    verifier = signing.verifier  # KMS's (kms:Verify), as every reader's
    write_base(s3, BUCKET, _base(STAMP), signing.signer)
    base = _base(STAMP)
    assert read_base(s3, BUCKET, base.base_id, verifier).tool_version == STAMP

    document = json.loads(s3.get_object(Bucket=BUCKET, Key=base.key)["Body"].read())
    s3.put_object(Bucket="copy", Key=base.key, Body=_altered(document, "manifest", STAMP, "9.9.9"))
    with pytest.raises(SegmentError, match="does not verify"):
        read_base(s3, "copy", base.base_id, verifier)

    # Written before the field existed: no tool_version key at all in the signed text.
    old = asdict(_base(None))
    del old["tool_version"]
    payload = json.dumps(old, indent=1, sort_keys=True).encode()
    s3.create_bucket(Bucket="old", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="old", Key=base.key, Body=envelope(payload, signing.signer.sign(payload), BASE_FORMAT))
    assert read_base(s3, "old", base.base_id, verifier).tool_version is None


def _segment(tool_version: str | None) -> tuple[Header, io.BytesIO]:
    body = io.BytesIO(gzip.compress(b"", mtime=0))
    first = FINISHED + timedelta(minutes=1)
    header = Header(base_id="b", seq=0, prev_end_lsn="0/100", start_lsn="0/2000", end_lsn="0/2100",
                    first_commit=first.isoformat(), last_commit=first.isoformat(), closed_at=first.isoformat(),
                    transactions=0, changes=0, xid_min=0, xid_max=0, relations={}, sequences={},
                    schema_fingerprint="f", tables={}, body_sha256=hashlib.sha256(body.getvalue()).hexdigest(),
                    body_bytes=len(body.getvalue()), uncovered=[], tool_version=tool_version)
    return header, body


def test_a_segment_header_carries_the_version_signed_and_one_from_before_still_opens(s3):
    signing = Signing()
    header, body = _segment(STAMP)
    key = write_segment(s3, BUCKET, header, body, signing.signer)["key"]
    opened = open_segment(s3, BUCKET, key, signing.verifier)
    assert opened.header.tool_version == STAMP
    opened.close()

    first, _, rest = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().partition(b"\n")
    s3.put_object(Bucket="copy", Key=key,
                  Body=_altered(json.loads(first), "header", STAMP, "9.9.9").replace(b": ", b":") + b"\n" + rest)
    with pytest.raises(SegmentError, match="does not verify"):
        open_segment(s3, "copy", key, signing.verifier)

    old = asdict(_segment(None)[0])
    del old["tool_version"]
    payload = json.dumps(old, separators=(",", ":"), sort_keys=True).encode()
    line = json.dumps({"format": "tavari-changes/1", "header": payload.decode(),
                       "signature": signing.signer.sign(payload)}, separators=(",", ":"), sort_keys=True).encode()
    s3.create_bucket(Bucket="old", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="old", Key=key, Body=line + b"\n" + rest)
    opened = open_segment(s3, "old", key, signing.verifier)
    assert opened.header.tool_version is None
    opened.close()


def test_a_dump_manifest_carries_the_version_signed_and_one_from_before_still_verifies(s3):
    signing = Signing()
    prefix = f"dumps/daily/{FINISHED:%Y%m%dT%H%M%SZ}-nightly"
    manifest = manifest_for(prefix, FINISHED, put_artifacts(s3, BUCKET, prefix))
    # Before the field: the signed text has no tool_version key (what every backup until now holds).
    old = json.loads(manifest.to_json())
    del old["tool_version"]
    payload = json.dumps(old, indent=1, sort_keys=True).encode()
    body = envelope(payload, signing.signer.sign(payload), FORMAT)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=body)
    opened = d.find_backup(s3, BUCKET, "latest", verifier=signing.verifier)
    assert opened.manifest.backup_id == manifest.backup_id and opened.manifest.tool_version is None

    # Now with it; then altered under the kept signature.
    manifest.tool_version = STAMP
    payload = manifest.to_json().encode()
    signature = signing.signer.sign(payload)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=envelope(payload, signature, FORMAT))
    newest = s3.list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/{MANIFEST}")["Versions"][0]["VersionId"]
    opened = d.find_backup(s3, BUCKET, manifest.backup_id, verifier=signing.verifier, manifest_version=newest)
    assert opened.manifest.tool_version == STAMP
    altered = payload.replace(STAMP.encode(), b"9.9.9")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{MANIFEST}", Body=envelope(altered, signature, FORMAT))
    forged = s3.list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/{MANIFEST}")["Versions"][0]["VersionId"]
    with pytest.raises(d.BackupTampered, match="does not verify"):
        d.find_backup(s3, BUCKET, manifest.backup_id, verifier=signing.verifier, manifest_version=forged)


# --------------------------------------------------------------------------- the changelog


def _towncrier_draft(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "towncrier", "build", "--draft", "--version", "9.9.9",
                           "--dir", str(folder)], capture_output=True, text=True, timeout=60)


def test_the_changelog_builds_from_its_fragments_and_a_misnamed_one_fails_it(tmp_path):
    """What `make lint` runs: the configuration builds a draft holding every fragment; a fragment whose
    type is misspelt fails the build rather than vanish from the release notes."""
    for name in ("pyproject.toml", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "changelog.d", tmp_path / "changelog.d")
    fragments = [p for p in (ROOT / "changelog.d").iterdir() if p.name != "README.md"]
    assert fragments, "no fragment for this round's changes"
    built = _towncrier_draft(tmp_path)
    assert built.returncode == 0, built.stderr
    for fragment in fragments:
        assert " ".join(fragment.read_text().split()[:6]) in " ".join(built.stdout.split()), fragment.name
    (tmp_path / "changelog.d" / "29.feture.md").write_text("A typo in the type.\n")
    refused = _towncrier_draft(tmp_path)
    assert refused.returncode != 0 and "29.feture.md" in refused.stderr + refused.stdout
