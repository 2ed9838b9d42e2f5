"""Supabase token verification with real signed tokens (keys made here with `cryptography`, signed by
hand so the tests do not trust the library under test; the JWKS from a local HTTP server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tavari_dr.core.outputs import PLACEHOLDER_TEMPLATE
from tavari_dr.export import authorizer
from tavari_dr.export.jwt_auth import MAX_TOKEN_CHARS, TokenRejected, Verifier, jwks_client, parse
from tests.http_stub import ScriptedServer

ISSUER = "https://abcd.supabase.co/auth/v1"
USER_A = "0b9d7654-d5c3-4b18-955c-41b27c717adb"
USER_B = "11111111-2222-4333-8444-555555555555"
NOW = time.time()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def num(n: int) -> str:
    return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def ec_jwk(key, kid, alg="ES256", size=32):
    public = key.public_key().public_numbers()
    crv = {32: "P-256", 48: "P-384"}[size]
    return {"kty": "EC", "crv": crv, "kid": kid, "alg": alg, "x": b64(public.x.to_bytes(size, "big")),
            "y": b64(public.y.to_bytes(size, "big"))}


def rsa_jwk(key, kid):
    public = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "n": num(public.n), "e": num(public.e)}


EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
P384_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SMALL_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak-key trap
EC_JWK = ec_jwk(EC_KEY, "ec-1")
RSA_JWK = rsa_jwk(RSA_KEY, "rsa-1")
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
OCT_SECRET = b"an-hmac-key-published-in-the-jwks-by-mistake"
# What the test project's JWKS holds besides the two real keys: each a trap a token may aim at.
TRAP_JWKS = [
    rsa_jwk(SMALL_RSA_KEY, "rsa-1024"),                   # below 2048 bits
    ec_jwk(P384_KEY, "ec-384", alg="ES256", size=48),     # claims ES256 on the wrong curve
    {"kty": "oct", "kid": "oct-1", "k": b64(OCT_SECRET)},  # a shared secret must never verify anything
]
EC_PUBLIC_PEM = EC_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def claims(**overrides):
    return {"iss": ISSUER, "aud": "authenticated", "sub": USER_A, "exp": NOW + 3600, "iat": NOW - 10,
            "role": "authenticated", **overrides}


def without(name, **overrides):
    body = claims(**overrides)
    del body[name]
    return body


def sign(alg, signed: bytes, key=None) -> bytes:
    if alg == "ES256":
        key = key or EC_KEY
        size = (key.curve.key_size + 7) // 8
        r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "RS256":
        return (key or RSA_KEY).sign(signed, padding.PKCS1v15(), hashes.SHA256())
    if alg == "HS256":
        secret = key if isinstance(key, bytes) else (key or HS_SECRET).encode()
        return hmac.new(secret, signed, hashlib.sha256).digest()
    return b""


def raw_token(header: bytes, payload: bytes, alg="ES256", key=None) -> str:
    """A token whose header and payload are these exact bytes, correctly signed: a refusal is then
    never the signature's doing."""
    signed = f"{b64(header)}.{b64(payload)}".encode()
    return f"{signed.decode()}.{b64(sign(alg, signed, key))}"


def token(alg="ES256", kid="ec-1", key=None, body=None, header=None):
    head = header if header is not None else {"alg": alg, "typ": "JWT", **({"kid": kid} if kid else {})}
    return raw_token(json.dumps(head).encode(), json.dumps(body if body is not None else claims()).encode(),
                     alg, key)


def good_header(**extra):
    return json.dumps({"alg": "ES256", "typ": "JWT", "kid": "ec-1", **extra}).encode()


def good_payload(**overrides):
    return json.dumps(claims(**overrides)).encode()


def nested(depth):
    return "[" * depth + "]" * depth


def with_segment(tok, index, change):
    parts = tok.split(".")
    parts[index] = change(parts[index])
    return ".".join(parts)


def same_bytes_other_text(segment):
    """The segment with its unused trailing bits set: lenient decoders read the same bytes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1])
    unused = {2: 0b1111, 3: 0b11}[len(segment) % 4]
    return segment[:-1] + alphabet[last | unused]


@pytest.fixture(scope="module")
def jwks_server():
    server = ScriptedServer([(200, {}, {"keys": [EC_JWK, RSA_JWK, *TRAP_JWKS]}, 0)] * 1000,
                            path="/auth/v1/.well-known/jwks.json")
    yield server
    server.close()


@pytest.fixture(scope="module")
def verifier(jwks_server):
    return Verifier(issuer=ISSUER, jwks=jwks_client(jwks_server.url), hs256_secret=HS_SECRET)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
def test_valid_tokens_pass_and_carry_their_subject(verifier, alg):
    kid = {"ES256": "ec-1", "RS256": "rsa-1", "HS256": None}[alg]
    assert verifier.verify(token(alg, kid))["sub"] == USER_A
    assert verifier.verify(token(alg, kid, body=claims(sub=USER_B)))["sub"] == USER_B  # A never becomes B


def test_what_supabase_issues_passes(verifier):
    """A real Supabase access token's shape: nested amr and metadata, aud as a string, integer times."""
    body = claims(exp=int(NOW) + 3600, iat=int(NOW) - 5, email="a@example.com", phone="", aal="aal1",
                  session_id="5f1e0c9e-0000-4000-8000-000000000000", is_anonymous=False,
                  amr=[{"method": "password", "timestamp": int(NOW) - 5}],
                  app_metadata={"provider": "email", "providers": ["email"]}, user_metadata={"name": "Ada"})
    assert verifier.verify(token(body=body))["sub"] == USER_A
    assert verifier.verify(token(body=claims(aud=["authenticated", "other"])))["sub"] == USER_A


# --------------------------------------------------------------------------- the attack corpus

KID_386_BYTES = raw_token(json.dumps({"alg": "ES256", "typ": "JWT", "kid": ["x"]}).encode(), good_payload())
CORPUS = [
    # what the module refused before
    ("no token", lambda: None, "no token"),
    ("empty", lambda: "", "no token"),
    ("two segments, one dash", lambda: "not.a-token", "malformed token"),
    ("garbage segments", lambda: "abc.def.ghi", "malformed token"),
    ("expired", lambda: token(body=claims(exp=NOW - 3600)), "expired"),
    ("not yet valid", lambda: token(body=claims(nbf=NOW + 3600)), "not valid yet"),
    ("issued in the future", lambda: token(body=claims(iat=NOW + 3600)), "not valid yet"),
    ("wrong issuer", lambda: token(body=claims(iss="https://evil.supabase.co/auth/v1")), "wrong issuer"),
    ("no issuer", lambda: token(body=without("iss")), "missing claim"),
    ("audience anon", lambda: token(body=claims(aud="anon")), "wrong audience"),
    ("audience list without ours", lambda: token(body=claims(aud=["anon"])), "wrong audience"),
    ("audience a number", lambda: token(body=claims(aud=5)), "wrong audience"),
    ("no audience", lambda: token(body=without("aud")), "missing claim"),
    ("another key's signature", lambda: token(key=OTHER_EC_KEY), "bad signature"),
    ("unknown kid", lambda: token(kid="unknown"), "unknown signing key"),
    ("no kid", lambda: token(kid=None), "unknown signing key"),
    ("alg none, no signature", lambda: token("none", header={"alg": "none", "typ": "JWT"}), "malformed token"),
    ("alg none with a signature", lambda: token(header={"alg": "none", "typ": "JWT"}),
     "algorithm 'none' is not accepted"),
    ("alg None", lambda: token(header={"alg": "None", "typ": "JWT"}), "algorithm 'None' is not accepted"),
    ("alg NONE", lambda: token(header={"alg": "NONE", "typ": "JWT", "kid": "ec-1"}), "'NONE' is not accepted"),
    ("HS256 signed with the EC JWK", lambda: token("HS256", key=json.dumps(EC_JWK)), "bad signature"),
    ("HS256 signed with the EC public PEM", lambda: token("HS256", key=EC_PUBLIC_PEM), "bad signature"),
    ("HS256 signed with the RSA public PEM", lambda: token("HS256", key=RSA_PUBLIC_PEM), "bad signature"),
    ("HS256 signed with the JWKS's oct key", lambda: token("HS256", kid="oct-1", key=OCT_SECRET), "bad signature"),
    ("ES256 naming the oct key", lambda: token(kid="oct-1"), "the key is not for this algorithm"),
    ("ES256 naming the RSA key", lambda: token("ES256", kid="rsa-1"), "the key is not for this algorithm"),
    ("RS256 naming the EC key", lambda: token("RS256", kid="ec-1"), "the key is not for this algorithm"),
    ("ES256 naming a P-384 key", lambda: token(kid="ec-384", key=P384_KEY), "the key is not for this algorithm"),
    ("RS256 with a 1024-bit key", lambda: token("RS256", kid="rsa-1024", key=SMALL_RSA_KEY),
     "unacceptable signing key"),
    ("empty subject", lambda: token(body=claims(sub="")), "no subject"),
    # key ids
    ("kid a list (the 386-byte token)", lambda: KID_386_BYTES, "malformed key id"),
    ("kid a dict", lambda: token(header={"alg": "ES256", "kid": {"x": 1}}), "malformed key id"),
    ("kid a number", lambda: token(header={"alg": "ES256", "kid": 7}), "malformed key id"),
    ("kid null", lambda: token(header={"alg": "ES256", "kid": None}), "malformed key id"),
    ("kid empty", lambda: token(header={"alg": "ES256", "kid": ""}), "malformed key id"),
    ("kid 300 characters", lambda: token(kid="k" * 300), "malformed key id"),
    ("kid past the size bound", lambda: token(kid="k" * MAX_TOKEN_CHARS), "malformed token"),
    # algorithms
    ("alg unknown", lambda: token(header={"alg": "XS999", "kid": "ec-1"}), "'XS999' is not accepted"),
    ("alg HS512", lambda: token(header={"alg": "HS512"}), "'HS512' is not accepted"),
    ("alg PS256", lambda: token(header={"alg": "PS256", "kid": "rsa-1"}), "'PS256' is not accepted"),
    ("alg EdDSA", lambda: token(header={"alg": "EdDSA", "kid": "ec-1"}), "'EdDSA' is not accepted"),
    ("alg missing", lambda: token(header={"typ": "JWT", "kid": "ec-1"}), "<NoneType> is not accepted"),
    ("alg a list", lambda: token(header={"alg": ["ES256"], "kid": "ec-1"}), "<list> is not accepted"),
    ("alg null", lambda: token(header={"alg": None, "kid": "ec-1"}), "<NoneType> is not accepted"),
    # other header parameters
    ("typ JWS", lambda: raw_token(good_header(typ="JWS"), good_payload()), "not a JWT"),
    ("typ a number", lambda: raw_token(good_header(typ=1), good_payload()), "not a JWT"),
    ("crit", lambda: raw_token(good_header(crit=["exp"]), good_payload()), "unsupported header parameter"),
    ("b64 false", lambda: raw_token(good_header(b64=False, crit=["b64"]), good_payload()),
     "unsupported header parameter"),
    ("header an array", lambda: raw_token(b'["ES256"]', good_payload()), "malformed token"),
    ("header a string", lambda: raw_token(b'"ES256"', good_payload()), "malformed token"),
    ("payload an array", lambda: raw_token(good_header(), b"[1, 2]"), "malformed token"),
    ("payload null", lambda: raw_token(good_header(), b"null"), "malformed token"),
    # nesting
    ("header of 1,000 nested arrays", lambda: raw_token(nested(1000).encode(), good_payload()), "nested too deep"),
    ("header holding 1,000 nested arrays",
     lambda: raw_token(b'{"alg":"ES256","kid":"ec-1","x":' + nested(1000).encode() + b"}", good_payload()),
     "nested too deep"),
    ("payload of 1,000 nested arrays", lambda: raw_token(good_header(), nested(1000).encode()), "nested too deep"),
    ("payload holding 1,000 nested objects",
     lambda: raw_token(good_header(), good_payload()[:-1] + b', "x": ' + b'{"":' * 1000 + b"1" + b"}" * 1001),
     "nested too deep"),
    # times
    ("exp NaN", lambda: raw_token(good_header(), good_payload(exp="@").replace(b'"@"', b"NaN")), "NaN is not JSON"),
    ("exp Infinity", lambda: raw_token(good_header(), good_payload(exp="@").replace(b'"@"', b"Infinity")),
     "Infinity is not JSON"),
    ("exp -Infinity", lambda: raw_token(good_header(), good_payload(exp="@").replace(b'"@"', b"-Infinity")),
     "-Infinity is not JSON"),
    ("exp past float range", lambda: raw_token(good_header(), good_payload(exp="@").replace(b'"@"', b"1e999")),
     "exp is not a finite number"),
    ("exp a 5,000-digit integer", lambda: raw_token(good_header(), good_payload(exp="@").replace(b'"@"', b"9" * 5000)),
     "malformed token"),
    ("exp 2**60", lambda: token(body=claims(exp=2**60)), "exp is not a finite number"),
    ("exp a numeric string", lambda: token(body=claims(exp="9999999999")), "exp is not a finite number"),
    ("exp true", lambda: token(body=claims(exp=True)), "exp is not a finite number"),
    ("exp null", lambda: token(body=claims(exp=None)), "exp is not a finite number"),
    ("exp a list", lambda: token(body=claims(exp=[NOW + 3600])), "exp is not a finite number"),
    ("exp missing", lambda: token(body=without("exp")), "missing claim exp"),
    ("nbf a string", lambda: token(body=claims(nbf="0")), "nbf is not a finite number"),
    ("nbf NaN", lambda: raw_token(good_header(), good_payload(nbf="@").replace(b'"@"', b"NaN")), "NaN is not JSON"),
    ("iat a string", lambda: token(body=claims(iat=str(int(NOW)))), "iat is not a finite number"),
    ("iat false", lambda: token(body=claims(iat=False)), "iat is not a finite number"),
    # roles and subjects
    ("role anon", lambda: token(body=claims(role="anon")), "wrong role"),
    ("role service_role", lambda: token(body=claims(role="service_role")), "wrong role"),
    ("role missing", lambda: token(body=without("role")), "wrong role"),
    ("role a list", lambda: token(body=claims(role=["authenticated"])), "wrong role"),
    ("role another case", lambda: token(body=claims(role="Authenticated")), "wrong role"),
    ("sub missing", lambda: token(body=without("sub")), "no subject"),
    ("sub a number", lambda: token(body=claims(sub=5)), "no subject"),
    ("sub twice", lambda: raw_token(good_header(), good_payload()[:-1] + f', "sub": "{USER_B}"}}'.encode()),
     "a name appears twice"),
    ("alg twice", lambda: raw_token(b'{"alg":"HS256","alg":"ES256","kid":"ec-1"}', good_payload()),
     "a name appears twice"),
    # segments and their encoding
    ("four segments", lambda: token() + ".AAAA", "malformed token"),
    ("two segments", lambda: token().rsplit(".", 1)[0], "malformed token"),
    ("five empty segments", lambda: "....", "malformed token"),
    ("empty signature", lambda: token().rsplit(".", 1)[0] + ".", "malformed token"),
    ("empty header", lambda: with_segment(token(), 0, lambda s: ""), "malformed token"),
    *[(f"'=' padding on segment {i}", lambda i=i: with_segment(token(), i, lambda s: s + "=" * (-len(s) % 4 or 4)),
       "malformed token") for i in range(3)],
    *[(f"trailing junk on segment {i}", lambda i=i: with_segment(token(), i, lambda s: s + "!"), "malformed token")
      for i in range(3)],
    # (a space after the last segment is HTTP header whitespace: the authorizer trims it, as API Gateway may)
    *[(f"trailing space on segment {i}", lambda i=i: with_segment(token(), i, lambda s: s + " "), "malformed token")
      for i in range(2)],
    ("a NUL after the signature", lambda: token() + "\x00", "malformed token"),
    ("a newline inside the signature", lambda: with_segment(token(), 2, lambda s: s[:10] + "\n" + s[10:]),
     "malformed token"),
    *[(f"one stray character on segment {i}", lambda i=i: with_segment(token(), i, lambda s: s + "A" * (
        1 if len(s) % 4 == 0 else 5 - len(s) % 4)), "malformed token") for i in range(3)],
    ("signature with its unused bits set", lambda: with_segment(token(), 2, same_bytes_other_text),
     "malformed token"),
    ("standard base64 alphabet", lambda: token().replace("-", "+").replace("_", "/") + "+/", "malformed token"),
    ("non-UTF-8 header", lambda: raw_token(b'\xff{"alg":"ES256","kid":"ec-1"}', good_payload()), "malformed token"),
    ("non-UTF-8 payload", lambda: raw_token(good_header(), good_payload()[:-1] + b', "x": "\xc3\x28"}'),
     "malformed token"),
    ("UTF-8 byte-order mark", lambda: raw_token(b"\xef\xbb\xbf" + good_header(), good_payload()), "malformed token"),
    ("non-ASCII characters", lambda: token() + "\u00e9", "malformed token"),
    ("oversized token", lambda: token(body=claims(pad="x" * MAX_TOKEN_CHARS)), "malformed token"),
    ("not a string", lambda: token().encode(), "malformed token"),
    ("DER-encoded ECDSA signature", lambda: with_segment(token(), 2, lambda s: b64(
        EC_KEY.sign(".".join(token().split(".")[:2]).encode(), ec.ECDSA(hashes.SHA256())))), "bad signature"),
]


def test_the_corpus_names_each_case_once():
    names = [name for name, _, _ in CORPUS]
    assert len(names) == len(set(names))


def test_brackets_inside_strings_are_not_nesting(verifier):
    body = claims(name="[" * 40 + "{" * 40, note='\\"]]]')
    assert verifier.verify(token(body=body))["name"] == body["name"]


@pytest.mark.parametrize(("make", "reason"), [pytest.param(m, r, id=n) for n, m, r in CORPUS])
def test_every_attack_is_refused_and_none_raises(verifier, make, reason):
    """Each case is refused with TokenRejected and the reason named; any other exception fails the test."""
    with pytest.raises(TokenRejected, match=reason):
        verifier.verify(make())


@pytest.mark.parametrize(("make", "reason"), [pytest.param(m, r, id=n) for n, m, r in CORPUS])
def test_the_authorizer_denies_every_attack(verifier, make, reason):
    candidate = make()
    header = f"Bearer {candidate}" if isinstance(candidate, str) else candidate
    assert authorizer.authorize({"headers": {"Authorization": header}}, verifier) == {"isAuthorized": False}


@pytest.mark.parametrize("event", [
    {}, {"headers": None}, {"headers": ["Authorization"]}, {"headers": {"authorization": None}},
    {"headers": {"authorization": ["Bearer", "x"]}}, {"headers": {"authorization": 5}},
    {"headers": {"authorization": "Basic dXNlcjpwYXNz"}}, {"headers": {"authorization": "Bearer"}},
])
def test_odd_requests_are_denied(verifier, event):
    assert authorizer.authorize(event, verifier) == {"isAuthorized": False}


def test_hs256_is_refused_where_the_project_has_no_shared_secret(jwks_server):
    verifier = Verifier(issuer=ISSUER, jwks=jwks_client(jwks_server.url))
    with pytest.raises(TokenRejected, match="HS256 is not accepted"):
        verifier.verify(token("HS256"))


def test_asymmetric_tokens_are_refused_where_the_project_has_no_jwks():
    verifier = Verifier(issuer=ISSUER, hs256_secret=HS_SECRET)
    with pytest.raises(TokenRejected, match="ES256 is not accepted"):
        verifier.verify(token())
    assert verifier.verify(token("HS256"))["sub"] == USER_A


def test_a_tampered_payload_fails_the_signature(verifier):
    head, _, signature = token().split(".")
    forged = b64(json.dumps(claims(sub=USER_B)).encode())
    with pytest.raises(TokenRejected, match="bad signature"):
        verifier.verify(f"{head}.{forged}.{signature}")


# The refusals that need a key, a signature or PyJWT's claim checks; every other case is refused by parse().
AFTER_PARSE = {"bad signature", "unknown signing key", "the key is not for this algorithm", "unacceptable signing key",
               "expired", "not valid yet", "wrong issuer", "wrong audience", "missing claim"}


def test_the_form_checks_run_before_any_key_is_fetched():
    """A malformed token costs no JWKS request and no signature check: parse() refuses it from its bytes."""
    server = ScriptedServer([], path="/auth/v1/.well-known/jwks.json")
    try:
        verifier = Verifier(issuer=ISSUER, jwks=jwks_client(server.url))
        for name, make, reason in CORPUS:
            if reason in AFTER_PARSE:
                continue
            with pytest.raises(TokenRejected, match=reason):
                parse(make())
            with pytest.raises(TokenRejected, match=reason):
                verifier.verify(make())
            assert server.requests == [], name
    finally:
        server.close()


# --------------------------------------------------------------------------- the JWKS


def test_jwks_is_fetched_once_and_cached(jwks_server):
    verifier = Verifier(issuer=ISSUER, jwks=jwks_client(jwks_server.url))
    before = len(jwks_server.requests)
    for _ in range(3):
        verifier.verify(token())
        verifier.verify(token("RS256", "rsa-1"))
    assert len(jwks_server.requests) - before == 1


def test_unknown_key_ids_do_not_make_the_authorizer_hammer_supabase(jwks_server):
    verifier = Verifier(issuer=ISSUER, jwks=jwks_client(jwks_server.url))
    before = len(jwks_server.requests)
    for n in range(20):
        with pytest.raises(TokenRejected, match="unknown signing key"):
            verifier.verify(token(kid=f"made-up-{n}"))
    assert len(jwks_server.requests) - before == 1  # the first fetch; refreshes wait out the cooldown


def test_a_rotated_key_is_found_after_the_cooldown(monkeypatch):
    new_key = ec.generate_private_key(ec.SECP256R1())
    before, after = {"keys": [EC_JWK]}, {"keys": [EC_JWK, ec_jwk(new_key, "ec-2")]}
    server = ScriptedServer([(200, {}, before, 0), (200, {}, after, 0)], path="/auth/v1/.well-known/jwks.json")
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])  # PyJWKClient's cooldown and cache clock
    try:
        verifier = Verifier(issuer=ISSUER, jwks=jwks_client(server.url))
        assert verifier.verify(token())["sub"] == USER_A
        rotated = token(kid="ec-2", key=new_key)
        with pytest.raises(TokenRejected, match="unknown signing key"):
            verifier.verify(rotated)  # within the cooldown: no refresh yet
        clock[0] += 61
        assert verifier.verify(rotated)["sub"] == USER_A
        assert len(server.requests) == 2
    finally:
        server.close()


@pytest.mark.parametrize(("answer", "why"), [
    ((500, {}, {"error": "down"}, 0), "HTTP 500"),
    ((200, {}, b"<html>maintenance</html>", 0), "not JSON"),
    ((200, {}, [EC_JWK], 0), "not an object"),
    ((200, {}, {"keys": []}, 0), "no keys"),
    ((200, {}, {"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": "AA", "y": "AA"}]}, 0), "a broken key"),
    ((200, {}, {"keys": "ec-1"}, 0), "keys not a list"),
    ((302, {"Location": "https://evil.example/jwks.json"}, b"", 0), "a redirect"),
])
def test_a_jwks_that_cannot_be_had_is_a_refusal_and_a_metric(answer, why, capsys):
    server = ScriptedServer([answer] * 3, path="/auth/v1/.well-known/jwks.json")
    try:
        verifier = Verifier(issuer=ISSUER, jwks=jwks_client(server.url))
        with pytest.raises(TokenRejected, match="signing keys unavailable"):
            verifier.verify(token())
    finally:
        server.close()
    assert '"ExportSigningKeysUnavailable"' in capsys.readouterr().out, why  # EMF -> the alarm


def test_unreachable_keys_deny_rather_than_allow(capsys):
    verifier = Verifier(issuer=ISSUER, jwks=jwks_client("http://127.0.0.1:9/jwks.json"))
    with pytest.raises(TokenRejected, match="signing keys unavailable"):
        verifier.verify(token())
    assert '"ExportSigningKeysUnavailable"' in capsys.readouterr().out


def test_the_verifier_for_a_project_reads_its_jwks_below_the_issuer(jwks_server):
    project = jwks_server.url.removesuffix("/auth/v1/.well-known/jwks.json")
    verifier = authorizer.verifier_for(project + "/", PLACEHOLDER_TEMPLATE)
    assert verifier.issuer == project + "/auth/v1" and verifier.hs256_secret is None
    assert verifier.verify(token(body=claims(iss=project + "/auth/v1")))["sub"] == USER_A


# --------------------------------------------------------------------------- property tests

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
segments = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ", max_size=60)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                 st.tuples(segments, segments, segments).map(".".join)))
def test_random_text_is_refused_never_raises(verifier, candidate):
    with pytest.raises(TokenRejected):
        verifier.verify(candidate)


@FUZZ
@given(header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "x"]), json_values, max_size=4),
       payload=json_values, signature=st.binary(max_size=80))
def test_random_json_is_refused_never_raises(verifier, header, payload, signature):
    candidate = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"
    with pytest.raises(TokenRejected):
        verifier.verify(candidate)


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(["exp", "nbf", "iat", "role", "sub", "aud", "iss", "x"]),
                                 json_values, max_size=4),
       alg=st.sampled_from(["ES256", "RS256", "HS256"]))
def test_signed_random_claims_pass_only_when_every_rule_holds(verifier, overrides, alg):
    """Correctly signed tokens with random claims: whatever passes has every property the API relies on."""
    kid = {"ES256": "ec-1", "RS256": "rsa-1", "HS256": None}[alg]
    try:
        accepted = verifier.verify(token(alg, kid, body=claims(**overrides)))
    except TokenRejected:
        return
    assert accepted["role"] == "authenticated" and accepted["iss"] == ISSUER
    assert isinstance(accepted["sub"], str) and accepted["sub"]
    audience = accepted["aud"]
    assert "authenticated" in (audience if isinstance(audience, list) else [audience])
    for name in ("exp", "nbf", "iat"):
        value = accepted.get(name, 0)
        assert type(value) in (int, float) and abs(value) <= 2**53
    assert accepted["exp"] > time.time() - 60
