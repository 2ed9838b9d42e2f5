"""Verify Supabase access tokens: PyJWT with ``cryptography``, behind strict checks of our own.

Supabase signs with ES256 or RS256 (public keys at <project>/auth/v1/.well-known/jwks.json,
fetched and cached by PyJWT's ``PyJWKClient``) or, on legacy projects, HS256 with the JWT
secret. The accepted algorithms are fixed here, never taken from the token alone: ``alg: none``
is refused, an HS256 token is only ever checked against the shared secret and an ES256/RS256
token only against a public key of the matching type from the project's JWKS.

PyJWT verifies the signature, exp, nbf, iat, issuer and audience. It is lenient where a token is
attacker-controlled input, so before it sees one, each token is held to the form Supabase issues
(see docs/decisions/0007): exactly three canonical base64url segments within a size bound; header
and payload JSON objects of bounded nesting without NaN/Infinity or duplicate names; ``alg``,
``kid`` and ``typ`` of the right types; exp, nbf and iat finite numbers (PyJWT takes "9999999999");
``role`` exactly ``authenticated``; a non-empty ``sub``. Every malformed input ends in
TokenRejected — never another exception — so the authorizer denies rather than fails.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

import jwt
from jwt.algorithms import has_crypto

from tavari_dr.core.metrics import EXPORT_SIGNING_KEYS_UNAVAILABLE, publish

if not has_crypto:  # PyJWT degrades silently without it, and every ES256/RS256 token would be refused
    raise ImportError("cryptography is not importable here: the authorizer cannot verify ES256/RS256 tokens")

from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402 - only once PyJWT found it

log = logging.getLogger("tavari.export")

LEEWAY_SECONDS = 30
AUDIENCE = "authenticated"
ROLE = "authenticated"
ALGORITHMS = ("ES256", "RS256", "HS256")
# Supabase access tokens are about 1 KB (more with large user metadata); API Gateway caps a header
# at 10 KB. Anything past this is refused before it is decoded.
MAX_TOKEN_CHARS = 8192
# Supabase claims nest three deep (amr: [{...}], app_metadata: {providers: [...]}).
MAX_JSON_DEPTH = 16
MAX_KID_CHARS = 256
# Times as exact numbers: an int beyond 2**53 has no float of its own, and PyJWT compares floats.
MAX_TIME = 2**53
JWKS_CACHE_SECONDS = 600
JWKS_REFRESH_COOLDOWN_SECONDS = 60  # an unknown kid re-fetches the JWKS at most once a minute
JWKS_TIMEOUT_SECONDS = 5

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_PUBLIC_KEY_TYPES = {"ES256": ec.EllipticCurvePublicKey, "RS256": rsa.RSAPublicKey}
# The token header parameters of a plain compact JWS; crit/b64 (RFC 7797) would change what is signed.
_REFUSED_HEADERS = ("crit", "b64")
# PyJWT's exceptions, by what the refusal says.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not valid yet"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.MissingRequiredClaimError, "missing claim"),
    (jwt.InvalidAlgorithmError, "the key is not for this algorithm"),
    (jwt.InvalidKeyError, "unacceptable signing key"),  # e.g. RSA under 2048 bits
)


class TokenRejected(ValueError):
    """The token is not acceptable; the message says why (never the token itself)."""


def jwks_client(url: str) -> jwt.PyJWKClient:
    """The project's JWKS through PyJWT's client: the key set is cached for ten minutes and an
    unknown kid re-fetches it at most once a minute. Its per-kid LRU cache (``cache_keys``) stays
    off: it never expires, so a key Supabase revoked would stay trusted in a warm Lambda."""
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, cache_keys=False,
                           cooldown_duration=JWKS_REFRESH_COOLDOWN_SECONDS, timeout=JWKS_TIMEOUT_SECONDS)


# --------------------------------------------------------------------------- the token's form


def _segment(text: str) -> bytes:
    """Canonical unpadded base64url only: no '=', no other alphabet, no stray trailing bits."""
    if not _SEGMENT.fullmatch(text) or len(text) % 4 == 1:
        raise TokenRejected("malformed token")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise TokenRejected("malformed token")
    return raw


def _nesting_within(text: str, limit: int) -> bool:
    """Whether arrays and objects nest at most ``limit`` deep (strings skipped), decided in one pass
    before the recursive JSON parser could exhaust the stack."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def _refuse_constant(name: str) -> Any:
    raise TokenRejected(f"malformed token ({name} is not JSON)")


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"sub": A, "sub": B}: parsers disagree on which one wins, so the token means nothing.
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise TokenRejected("malformed token (a name appears twice)")
    return dict(pairs)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenRejected("malformed token") from None
    if not _nesting_within(text, MAX_JSON_DEPTH):
        raise TokenRejected("malformed token (nested too deep)")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_names)
    except ValueError as error:  # JSONDecodeError, and ints longer than Python converts
        if isinstance(error, TokenRejected):
            raise
        raise TokenRejected("malformed token") from None
    if not isinstance(value, dict):
        raise TokenRejected("malformed token")
    return value


def _is_time(value: Any) -> bool:
    """A NumericDate: an int or float (never bool or string), finite, exactly representable."""
    if type(value) is int:
        return -MAX_TIME <= value <= MAX_TIME
    return type(value) is float and math.isfinite(value) and abs(value) <= MAX_TIME


def parse(token: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The token's header and claims if it has the form Supabase issues, else TokenRejected.
    Nothing here is trusted yet: the signature is checked afterwards."""
    if not token:
        raise TokenRejected("no token")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected("malformed token")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("malformed token")
    try:
        raw_header, raw_claims, _signature = (_segment(p) for p in parts)
    except (binascii.Error, ValueError) as error:
        if isinstance(error, TokenRejected):
            raise
        raise TokenRejected("malformed token") from None
    header, claims = _json_object(raw_header), _json_object(raw_claims)

    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        short = isinstance(algorithm, str) and len(algorithm) <= 16
        shown = repr(algorithm) if short else f"<{type(algorithm).__name__}>"
        raise TokenRejected(f"algorithm {shown} is not accepted")
    kid = header.get("kid")
    if "kid" in header and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS):
        raise TokenRejected("malformed key id")
    typ = header.get("typ")
    if "typ" in header and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise TokenRejected("not a JWT")
    if any(name in header for name in _REFUSED_HEADERS):
        raise TokenRejected("unsupported header parameter")

    if "exp" not in claims:
        raise TokenRejected("missing claim exp")
    for name in ("exp", "nbf", "iat"):
        if name in claims and not _is_time(claims[name]):
            raise TokenRejected(f"{name} is not a finite number")
    if claims.get("role") != ROLE:
        raise TokenRejected("wrong role")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise TokenRejected("no subject")
    return header, claims


# --------------------------------------------------------------------------- signature and claims


@dataclass(frozen=True)
class Verifier:
    """issuer: https://<ref>.supabase.co/auth/v1; jwks: the project's keys (``jwks_client``), or None
    where the project signs with HS256 only; hs256_secret: the legacy JWT secret, or None where the
    project signs asymmetrically only."""

    issuer: str
    jwks: jwt.PyJWKClient | None = None
    hs256_secret: str | None = None

    def verify(self, token: Any) -> dict[str, Any]:
        """The token's claims, or TokenRejected."""
        header, _ = parse(token)
        algorithm = header["alg"]
        key: Any
        if algorithm == "HS256":
            if not self.hs256_secret:
                raise TokenRejected("HS256 is not accepted for this project")
            key = self.hs256_secret
        else:
            key = self._public_key(algorithm, header.get("kid"))
        try:
            return jwt.decode(
                token, key, algorithms=[algorithm], audience=AUDIENCE, issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"], "strict_aud": False,
                         # A short HMAC secret or an RSA key under 2048 bits is a refusal, not a warning.
                         "enforce_minimum_key_length": True})
        except jwt.PyJWTError as error:
            for kind, reason in _REASONS:
                if isinstance(error, kind):
                    raise TokenRejected(reason) from None
            raise TokenRejected("malformed token") from None

    def _public_key(self, algorithm: str, kid: str | None) -> jwt.PyJWK:
        if self.jwks is None:
            raise TokenRejected(f"{algorithm} is not accepted for this project")
        if kid is None:
            raise TokenRejected("unknown signing key")
        try:
            self.jwks.get_signing_keys()  # the cached set; a failure here is the endpoint's, not the token's
        except (jwt.PyJWTError, OSError, ValueError) as error:
            self._keys_unavailable(error)
        try:
            key = self.jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as error:  # the refresh an unknown kid asked for
            self._keys_unavailable(error)
        except jwt.PyJWKClientError:
            raise TokenRejected("unknown signing key") from None
        except (jwt.PyJWTError, OSError, ValueError) as error:
            self._keys_unavailable(error)
        if key.algorithm_name != algorithm or not isinstance(key.key, _PUBLIC_KEY_TYPES[algorithm]):
            raise TokenRejected("the key is not for this algorithm")
        if algorithm == "ES256" and key.key.curve.name != "secp256r1":
            raise TokenRejected("the key is not for this algorithm")
        return key

    @staticmethod
    def _keys_unavailable(error: Exception) -> NoReturn:
        # Fail closed, and say so: every ES256/RS256 user is refused until the keys come back.
        publish({EXPORT_SIGNING_KEYS_UNAVAILABLE: 1})
        log.error(json.dumps({"event": "signing_keys_unavailable", "error": type(error).__name__}))
        raise TokenRejected("signing keys unavailable") from None
