"""Verify Supabase access tokens in pure Python (the Lambda runtime ships no crypto library).

Supabase signs with ES256 or RS256 (public keys at <project>/auth/v1/.well-known/jwks.json) or,
on legacy projects, HS256 with the JWT secret. Accepted algorithms are fixed here, never taken
from the token alone: ``alg: none`` and algorithm confusion (an HS256 token "signed" with a
public key) are refused. Claims checked: issuer, audience ``authenticated``, exp, nbf, sub.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LEEWAY_SECONDS = 30
AUDIENCE = "authenticated"

# NIST P-256 (secp256r1)
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
      0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
# DER DigestInfo prefix for SHA-256 (RFC 8017, EMSA-PKCS1-v1_5)
_SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


class TokenRejected(ValueError):
    """The token is not acceptable; the message says why (never the token itself)."""


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _int(data: str) -> int:
    return int.from_bytes(_b64(data), "big")


# --------------------------------------------------------------------------- signatures


def _point_add(p: tuple[int, int] | None, q: tuple[int, int] | None) -> tuple[int, int] | None:
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % _P == 0:
        return None
    if p == q:
        slope = (3 * p[0] * p[0] + _A) * pow(2 * p[1], _P - 2, _P) % _P
    else:
        slope = (q[1] - p[1]) * pow(q[0] - p[0], _P - 2, _P) % _P
    x = (slope * slope - p[0] - q[0]) % _P
    return x, (slope * (p[0] - x) - p[1]) % _P


def _multiply(k: int, point: tuple[int, int]) -> tuple[int, int] | None:
    result, addend = None, point
    while k:
        if k & 1:
            result = _point_add(result, addend)
        addend = _point_add(addend, addend)  # type: ignore[assignment]
        k >>= 1
    return result


def verify_es256(message: bytes, signature: bytes, jwk: dict[str, Any]) -> bool:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256" or len(signature) != 64:
        return False
    q = (_int(jwk["x"]), _int(jwk["y"]))
    if (q[1] * q[1] - (q[0] ** 3 + _A * q[0] + _B)) % _P:
        return False  # not on the curve
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return False
    z = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, _N - 2, _N)
    point = _point_add(_multiply(z * w % _N, _G), _multiply(r * w % _N, q))
    return point is not None and point[0] % _N == r


def verify_rs256(message: bytes, signature: bytes, jwk: dict[str, Any]) -> bool:
    if jwk.get("kty") != "RSA":
        return False
    n, e = _int(jwk["n"]), _int(jwk["e"])
    size = (n.bit_length() + 7) // 8
    if len(signature) != size or n.bit_length() < 2048:
        return False
    decoded = pow(int.from_bytes(signature, "big"), e, n).to_bytes(size, "big")
    digest_info = _SHA256_PREFIX + hashlib.sha256(message).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return hmac.compare_digest(decoded, expected)


# --------------------------------------------------------------------------- keys


class Jwks:
    """The project's JWKS, fetched on demand and cached (re-fetched for an unknown kid, at most once a minute)."""

    def __init__(self, url: str, *, ttl: float = 600.0, fetch: Callable[[str], dict[str, Any]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url, self.ttl, self.clock = url, ttl, clock
        self._fetch = fetch or _fetch_json
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = -1e18

    def key(self, kid: str | None) -> dict[str, Any] | None:
        stale = self.clock() - self._fetched_at > self.ttl
        if stale or (kid not in self._keys and self.clock() - self._fetched_at > 60):
            document = self._fetch(self.url)
            self._keys = {k.get("kid"): k for k in document.get("keys", [])}
            self._fetched_at = self.clock()
        return self._keys.get(kid)


def _fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the project's own https JWKS
        return json.loads(response.read())


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Verifier:
    """issuer: https://<ref>.supabase.co/auth/v1; jwks: the project's keys; hs256_secret: the legacy JWT
    secret, or None where the project signs asymmetrically only."""

    issuer: str
    jwks: Jwks | None = None
    hs256_secret: str | None = None
    clock: Callable[[], float] = time.time

    def verify(self, token: str | None) -> dict[str, Any]:
        """The token's claims, or TokenRejected."""
        if not token:
            raise TokenRejected("no token")
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("malformed token")
        try:
            header = json.loads(_b64(parts[0]))
            claims = json.loads(_b64(parts[1]))
            signature = _b64(parts[2])
        except ValueError:
            raise TokenRejected("malformed token") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenRejected("malformed token")
        signed = f"{parts[0]}.{parts[1]}".encode()
        algorithm = header.get("alg")
        if algorithm == "HS256":
            if not self.hs256_secret:
                raise TokenRejected("HS256 is not accepted for this project")
            expected = hmac.new(self.hs256_secret.encode(), signed, hashlib.sha256).digest()
            valid = hmac.compare_digest(expected, signature)
        elif algorithm in ("ES256", "RS256"):
            try:
                key = self.jwks.key(header.get("kid")) if self.jwks else None
            except (OSError, ValueError):
                raise TokenRejected("signing keys unavailable") from None  # fail closed
            if key is None:
                raise TokenRejected("unknown signing key")
            if key.get("alg") not in (None, algorithm):
                raise TokenRejected("the key is not for this algorithm")
            valid = (verify_es256 if algorithm == "ES256" else verify_rs256)(signed, signature, key)
        else:
            raise TokenRejected(f"algorithm {algorithm!r} is not accepted")
        if not valid:
            raise TokenRejected("bad signature")
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self.clock()
        if claims.get("iss") != self.issuer:
            raise TokenRejected("wrong issuer")
        audience = claims.get("aud")
        if AUDIENCE not in (audience if isinstance(audience, list) else [audience]):
            raise TokenRejected("wrong audience")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - LEEWAY_SECONDS:
            raise TokenRejected("expired")
        if isinstance(claims.get("nbf"), (int, float)) and claims["nbf"] > now + LEEWAY_SECONDS:
            raise TokenRejected("not valid yet")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenRejected("no subject")
