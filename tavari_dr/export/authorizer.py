"""The export API's Lambda authorizer: ``Authorization: Bearer <Supabase access token>`` -> the user's ID.

Its own module, apart from tavari_dr.export.api, so that only the authorizer's bundle carries
PyJWT and cryptography (the API and worker trust the ``sub`` it hands over and verify nothing).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tavari_dr.core.outputs import is_placeholder
from tavari_dr.export.jwt_auth import TokenRejected, Verifier, jwks_client

log = logging.getLogger("tavari.export")


def verifier_for(supabase_url: str, hs256_secret: str | None) -> Verifier:
    """Supabase's issuer is ``<project URL>/auth/v1``; its keys are at ``/.well-known/jwks.json`` below it."""
    issuer = supabase_url.rstrip("/") + "/auth/v1"
    secret = None if hs256_secret is None or is_placeholder(hs256_secret) or not hs256_secret.strip() else hs256_secret
    return Verifier(issuer=issuer, jwks=jwks_client(issuer + "/.well-known/jwks.json"), hs256_secret=secret)


def authorize(event: dict[str, Any], verifier: Verifier) -> dict[str, Any]:
    """HTTP API Lambda authorizer, simple response format (payload 2.0)."""
    headers = event.get("headers")
    headers = {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {}
    header = headers.get("authorization")
    scheme, _, token = header.partition(" ") if isinstance(header, str) else ("", "", "")
    try:
        if scheme.lower() != "bearer":
            raise TokenRejected("no bearer token")
        claims = verifier.verify(token.strip())
    except TokenRejected as refused:
        log.info(json.dumps({"event": "token_refused", "reason": str(refused)}))
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"sub": claims["sub"]}}
