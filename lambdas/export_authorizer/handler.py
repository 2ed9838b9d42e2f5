"""HTTP API Lambda authorizer: Supabase access token -> user ID. Logic: tavari_dr.export.authorizer / jwt_auth."""

import os

from tavari_dr.core import aws, observability
from tavari_dr.core.aws import SecretCache
from tavari_dr.export import authorizer
from tavari_dr.export.jwt_auth import Verifier

SUPABASE_URL_SECRET = os.environ["SUPABASE_URL_SECRET_ARN"]
JWT_SECRET = os.environ.get("SUPABASE_JWT_SECRET_ARN") or None
SECRETS = SecretCache(aws.client("secretsmanager"))
# (project URL, HS256 secret) -> Verifier, so the JWKS cache outlives one invocation
_verifiers: dict[tuple[str, str | None], Verifier] = {}


# The event holds the bearer token: the decorator never logs or traces an event.
@observability.lambda_handler("export_authorizer")
def handler(event, context):
    key = (SECRETS.get(SUPABASE_URL_SECRET), SECRETS.get(JWT_SECRET) if JWT_SECRET else None)
    if key not in _verifiers:
        _verifiers.clear()
        _verifiers[key] = authorizer.verifier_for(*key)
    return authorizer.authorize(event, _verifiers[key])
