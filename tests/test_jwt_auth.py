"""Supabase token verification with real signed tokens (keys made here, JWKS from a local server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tavari_dr.export.jwt_auth import Jwks, TokenRejected, Verifier
from tests.http_stub import ScriptedServer

ISSUER = "https://abcd.supabase.co/auth/v1"
USER_A = "0b9d7654-d5c3-4b18-955c-41b27c717adb"
USER_B = "11111111-2222-4333-8444-555555555555"
NOW = time.time()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def num(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_PUBLIC = EC_KEY.public_key().public_numbers()
EC_JWK = {"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256", "x": b64(EC_PUBLIC.x.to_bytes(32, "big")),
          "y": b64(EC_PUBLIC.y.to_bytes(32, "big"))}
RSA_PUBLIC = RSA_KEY.public_key().public_numbers()
RSA_JWK = {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": num(RSA_PUBLIC.n), "e": num(RSA_PUBLIC.e)}
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


def claims(**overrides):
    return {"iss": ISSUER, "aud": "authenticated", "sub": USER_A, "exp": NOW + 3600, "iat": NOW - 10,
            "role": "authenticated", **overrides}


def token(alg="ES256", kid="ec-1", key=None, body=None, header=None):
    head = b64(json.dumps(header or {"alg": alg, "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(body or claims()).encode())
    signed = f"{head}.{payload}".encode()
    if alg == "ES256":
        r, s = decode_dss_signature((key or EC_KEY).sign(signed, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "RS256":
        signature = (key or RSA_KEY).sign(signed, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "HS256":
        signature = hmac.new((key or HS_SECRET).encode(), signed, hashlib.sha256).digest()
    else:
        signature = b""
    return f"{head}.{payload}.{b64(signature)}"


@pytest.fixture(scope="module")
def jwks_server():
    server = ScriptedServer([(200, {}, {"keys": [EC_JWK, RSA_JWK]}, 0)] * 100,
                            path="/auth/v1/.well-known/jwks.json")
    yield server
    server.close()


@pytest.fixture
def verifier(jwks_server):
    return Verifier(issuer=ISSUER, jwks=Jwks(jwks_server.url), hs256_secret=HS_SECRET)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_valid_tokens_pass_and_carry_their_subject(verifier, alg):
    kid = {"ES256": "ec-1", "RS256": "rsa-1", "HS256": None}[alg]
    assert verifier.verify(token(alg, kid))["sub"] == USER_A
    assert verifier.verify(token(alg, kid, body=claims(sub=USER_B)))["sub"] == USER_B  # A never becomes B


def test_jwks_is_fetched_once_and_cached(jwks_server, verifier):
    before = len(jwks_server.requests)
    for _ in range(3):
        verifier.verify(token())
    assert len(jwks_server.requests) - before == 1


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: None, "no token"),
    (lambda: "not.a-token", "malformed token"),
    (lambda: "abc.def.ghi", "malformed token"),
    (lambda: token(body=claims(exp=NOW - 3600)), "expired"),
    (lambda: token(body=claims(nbf=NOW + 3600)), "not valid yet"),
    (lambda: token(body=claims(iss="https://evil.supabase.co/auth/v1")), "wrong issuer"),
    (lambda: token(body=claims(aud="anon")), "wrong audience"),
    (lambda: token(key=OTHER_EC_KEY), "bad signature"),
    (lambda: token(kid="unknown"), "unknown signing key"),
    (lambda: token("none", header={"alg": "none", "typ": "JWT"}), "algorithm 'none' is not accepted"),
    (lambda: token("HS256", key=json.dumps(EC_JWK)), "bad signature"),  # HS/ES confusion
    (lambda: token("ES256", kid="rsa-1"), "the key is not for this algorithm"),
    (lambda: token(body=claims(sub="")), "no subject"),
])
def test_bad_tokens_are_denied_with_a_reason(verifier, make, reason):
    with pytest.raises(TokenRejected, match=reason):
        verifier.verify(make())


def test_hs256_is_refused_where_the_project_has_no_shared_secret(jwks_server):
    verifier = Verifier(issuer=ISSUER, jwks=Jwks(jwks_server.url))
    with pytest.raises(TokenRejected, match="HS256 is not accepted"):
        verifier.verify(token("HS256"))


def test_a_tampered_payload_fails_the_signature(verifier):
    head, _, signature = token().split(".")
    forged = b64(json.dumps(claims(sub=USER_B)).encode())
    with pytest.raises(TokenRejected, match="bad signature"):
        verifier.verify(f"{head}.{forged}.{signature}")


def test_unreachable_keys_deny_rather_than_allow():
    verifier = Verifier(issuer=ISSUER, jwks=Jwks("http://127.0.0.1:9/jwks.json"))
    with pytest.raises(TokenRejected, match="signing keys unavailable"):
        verifier.verify(token())
