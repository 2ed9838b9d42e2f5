"""Backup manifests signed with a KMS asymmetric key that only the backup job may use.

The manifest pins every artifact's version ID, size and sha256; its signature is what makes those
pins trustworthy: a writer with nothing but ``s3:PutObject`` on the backup bucket can upload a new
manifest, but not one that verifies. Readers verify against the key they were *told* to trust
(the stack's output, or the job's argument), never against a key the manifest names.

KMS signs and verifies (``kms:Sign`` / ``kms:Verify``): no key material ever leaves KMS and no
signature code is written here. The key's creation date is the cut-over: a manifest without a
signature can only be a backup written before the key existed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ALGORITHM = "ECDSA_SHA_256"  # the ECC_NIST_P256 keys' algorithm (the stack's ManifestSigningKey, ChangeSigningKey)
# Two keys, each trusted for its own records only (issue 27): the nightly job signs dump manifests with
# the manifest key; the always-on capture signs change records (segments, base records under changes/)
# with the change key. A reader is given the one key for what it reads, so a capture's signature can
# never make a backup (nor a backup job's a change record).
MANIFEST_KEY = "the backup signing key"
CHANGE_KEY = "the change signing key"


class SignatureInvalid(ValueError):
    """A manifest's signature is missing, malformed, by another key, or does not verify."""


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


@dataclass(frozen=True)
class KmsSigner:
    """Signs a manifest's exact bytes (as a SHA-256 digest, so any size signs in one call)."""

    kms: Any
    key_id: str

    def sign(self, payload: bytes) -> dict[str, str]:
        answer = self.kms.sign(KeyId=self.key_id, Message=_digest(payload), MessageType="DIGEST",
                               SigningAlgorithm=ALGORITHM)
        return {"key_id": answer["KeyId"], "algorithm": ALGORITHM,
                "value": base64.b64encode(answer["Signature"]).decode()}


def _signature_bytes(signature: Any) -> bytes:
    """The signature's bytes, from the envelope's ``{key_id, algorithm, value}``; refused when malformed."""
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM \
            or not isinstance(signature.get("value"), str):
        raise SignatureInvalid(f"the signature is malformed (expected {{key_id, algorithm: {ALGORITHM}, value}})")
    try:
        return base64.b64decode(signature["value"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("the signature is not base64") from None


@dataclass(frozen=True)
class KmsVerifier:
    """Verifies with the trusted key; ``cutover`` is that key's creation time; ``name`` says which key it
    is (MANIFEST_KEY, CHANGE_KEY) in a refusal."""

    kms: Any
    key_id: str
    name: str = MANIFEST_KEY

    def verify(self, payload: bytes, signature: Any) -> None:
        from botocore.exceptions import ClientError

        value = _signature_bytes(signature)
        try:
            answer = self.kms.verify(KeyId=self.key_id, Message=_digest(payload), MessageType="DIGEST",
                                     Signature=value, SigningAlgorithm=ALGORITHM)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "KMSInvalidSignatureException":
                answer = {"SignatureValid": False}
            else:
                raise
        if not answer.get("SignatureValid"):
            claimed = signature.get("key_id")
            other = f" (it claims key {claimed})" if claimed and not _same_key(claimed, self.key_id) else ""
            raise SignatureInvalid(f"the signature does not verify with {self.name} {self.key_id}{other}")

    @property
    def cutover(self) -> datetime:
        return self.kms.describe_key(KeyId=self.key_id)["KeyMetadata"]["CreationDate"]


@dataclass(frozen=True)
class PublicKeyVerifier:
    """Verifies without KMS, with the signing key's public key (KMS GetPublicKey's DER, or PEM), exported
    while the key's region was up: a failover to the DR region cannot reach the key (docs/decisions/0026).

    KMS signs ``MessageType=DIGEST`` as ECDSA over the given SHA-256 digest, so this verifies the same
    digest as pre-hashed (cryptography's Prehashed). The export does not carry the key's creation date:
    every unsigned (format 1) manifest is refused, never judged by a cut-over it cannot know."""

    public_key: bytes
    key_id: str = "the exported public key"

    def verify(self, payload: bytes, signature: Any) -> None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, utils

        value = _signature_bytes(signature)
        key = (serialization.load_pem_public_key(self.public_key) if self.public_key.lstrip().startswith(b"-----")
               else serialization.load_der_public_key(self.public_key))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureInvalid(f"{self.key_id} is not an elliptic-curve key ({ALGORITHM})")
        try:
            key.verify(value, _digest(payload), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            raise SignatureInvalid(f"the signature does not verify with {self.key_id}") from None

    @property
    def cutover(self) -> datetime:
        return datetime.min.replace(tzinfo=UTC)


def manifest_verifier(kms: Any, key_id: str) -> KmsVerifier:
    """The reader of dump manifests: trusts the manifest signing key, never the change key."""
    return KmsVerifier(kms, key_id, MANIFEST_KEY)


def change_verifier(kms: Any, key_id: str) -> KmsVerifier:
    """The reader of change records (segments, base records): trusts the change signing key only."""
    return KmsVerifier(kms, key_id, CHANGE_KEY)


def distinct_keys(manifest_key: str, change_key: str) -> None:
    """Two keys or no separation: the same key for both would let the capture sign a backup again."""
    if _same_key(manifest_key, change_key):
        raise ValueError(f"the manifest signing key and the change signing key must be two different keys "
                         f"(both are {manifest_key})")


def _same_key(a: str, b: str) -> bool:
    return a == b or a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def envelope(payload: bytes, signature: dict[str, str], format_: str) -> bytes:
    """What manifest.json holds: the signed payload verbatim (a string, so nothing re-serialises it
    before verification) beside its signature."""
    return json.dumps({"format": format_, "manifest": payload.decode(), "signature": signature},
                      indent=1, sort_keys=True).encode()
