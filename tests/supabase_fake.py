"""A loopback Supabase Management API driven by its OpenAPI document (tests/data/supabase_management_api,
where SOURCE.md names the commit it comes from): every request is validated against the document — its
method and path, the `ref` parameter, the bearer token, the body — and so is every answer the fake gives.
A call the document does not allow is answered as the API would (404, 405, 400) AND recorded in
``violations``, which the fixture fails the test on: a client that drifts from the specification fails
here, not in a real restore.

What the document does not say, and this fake adds:
- request bodies are closed (``additionalProperties: false`` where the document leaves it open): the API
  rejects a property its update does not take (the auth config's read returns fields its update refuses);
- the ``bearer`` security scheme the operations name (the document names it but defines no scheme, and
  names an alternative ``fga_permissions`` for Supabase's own dashboard, dropped here);
- each update's semantics: PATCH merges the keys sent, ``PUT /config/database/postgres`` REPLACES every
  override with the body (Supabase's reference: "the full set must be sent") and restarts the database
  unless ``restart_database`` is false, ``POST /network-restrictions/apply`` replaces both CIDR lists,
  ``PUT /ssl-enforcement`` sets ``currentConfig``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.exceptions import SecurityValidationError

from tests.http_stub import RoutedServer

SPEC_PATH = Path(__file__).parent / "data" / "supabase_management_api" / "openapi.json"
REF = "abcdefghijklmnopqrst"  # the document's own example ref (20 lowercase letters)
TOKEN = "sbp_token"
PROJECT_PREFIX = "/v1/projects/{ref}"


def load_document() -> dict[str, Any]:
    """The document as the API is specified (unchanged)."""
    return json.loads(SPEC_PATH.read_text())


def _closed(schema: Any) -> None:
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            _closed(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed(value)


def enforced_document() -> dict[str, Any]:
    """The document as this fake enforces it (the module docstring's additions)."""
    document = load_document()
    schemas = document["components"]["schemas"]
    for item in document["paths"].values():
        for operation in item.values():
            operation["security"] = [s for s in operation.get("security", []) if "bearer" in s]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body and "$ref" in body:
                _closed(schemas[body["$ref"].rsplit("/", 1)[1]])
    document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return document


def request_schema(method: str, path: str) -> dict[str, Any]:
    """The request body's schema of ``method path`` (path under /v1/projects/{ref}), from the document."""
    document = load_document()
    operation = document["paths"][PROJECT_PREFIX + path][method.lower()]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def response_schema(method: str, path: str) -> dict[str, Any]:
    """The 2xx answer's schema of ``method path`` (the array's item for a list)."""
    document = load_document()
    responses = document["paths"][PROJECT_PREFIX + path][method.lower()]["responses"]
    schema = next(r for status, r in responses.items() if status.startswith("2"))["content"]["application/json"][
        "schema"]
    schema = schema.get("items", schema)
    return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]


def conforming(schema: dict[str, Any]) -> Any:
    """The plainest value the schema accepts (null where nullable): a fresh project's answer, which a
    test then fills in with the settings it cares about."""
    if schema.get("nullable") and None in schema.get("enum", [None]):  # a nullable enum takes null only if listed
        return None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: conforming(v) for k, v in schema.get("properties", {}).items() if k in schema.get("required", ())}
    return {"boolean": False, "integer": schema.get("minimum", 0), "number": 0, "string": "", "array": []}[kind]


def project() -> dict[str, Any]:
    """A configured project, every answer as its GET's schema requires (secrets included: the snapshot
    must leave them out)."""
    auth = conforming(response_schema("GET", "/config/auth"))
    auth.update(site_url="https://app.tavari.example", jwt_exp=3600, disable_signup=False,
                refresh_token_rotation_enabled=True, smtp_host="smtp.example", smtp_user="mailer",
                smtp_pass="smtp-password-1", external_google_enabled=True, external_google_client_id="client-id",
                external_google_secret="google-oauth-secret-2", sms_twilio_auth_token="twilio-token-3",
                hook_custom_access_token_secrets="hook-secret-5", sms_test_otp="+15550100=123456",
                uri_allow_list="https://app.tavari.example/**", custom_oauth_max_providers=3,
                saml_allow_encrypted_assertions=False)
    storage = {"fileSizeLimit": 52428800,
               "features": {"imageTransformation": {"enabled": True}, "s3Protocol": {"enabled": False},
                            "icebergCatalog": {"enabled": False, "maxNamespaces": 0, "maxTables": 0,
                                               "maxCatalogs": 0},
                            "vectorBuckets": {"enabled": False, "maxBuckets": 0, "maxIndexes": 0}},
               "capabilities": {"list_v2": True, "iceberg_catalog": False}, "external": {"upstreamTarget": "main"},
               "migrationVersion": "s3-multipart-uploads", "databasePoolMode": "recycled"}
    return {
        "/config/auth": auth,
        "/config/database/postgres": {"statement_timeout": "8s", "max_connections": 90},
        "/config/database/pooler": [{
            "identifier": REF, "database_type": "PRIMARY", "is_using_scram_auth": True, "db_user": "postgres",
            "db_host": "aws-0-eu-west-1.pooler.supabase.com", "db_port": 6543, "db_name": "postgres",
            "connection_string": "postgres://postgres.ref:[YOUR-PASSWORD]@host:6543/postgres",
            "connectionString": "postgres://postgres.ref:[YOUR-PASSWORD]@host:6543/postgres",
            "default_pool_size": 15, "max_client_conn": 200, "pool_mode": "transaction"}],
        "/network-restrictions": {"entitlement": "allowed", "config": {"dbAllowedCidrs": ["203.0.113.0/24"],
                                                                       "dbAllowedCidrsV6": ["2001:db8::/32"]},
                                  "status": "applied", "updated_at": "2026-11-01T00:00:00Z"},
        "/postgrest": {"db_schema": "public,graphql_public", "max_rows": 1000,
                       "db_extra_search_path": "public,extensions", "db_pool": None, "jwt_secret": "jwt-secret-4"},
        "/config/storage": storage,
        "/ssl-enforcement": {"currentConfig": {"database": True}, "appliedSuccessfully": True},
    }


class ManagementApiFake(RoutedServer):
    """The project's configuration behind the specified calls (module docstring). ``refuse`` answers every
    request with that status; ``restarts`` counts the database restarts a PUT of the Postgres settings
    asked for; ``violations`` lists every request or answer the document does not allow."""

    _api: OpenAPI | None = None

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        if ManagementApiFake._api is None:
            ManagementApiFake._api = OpenAPI.from_dict(enforced_document())
        self.state = copy.deepcopy(state if state is not None else project())
        self.refuse: int | None = None
        self.restarts = 0
        self.violations: list[str] = []
        super().__init__(self.route, with_headers=True)

    def _check_request(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any] | None:
        request = MockRequest(self.url, method, path, headers=headers,
                              data=json.dumps(body).encode() if body is not None else None)
        try:
            self._api.validate_request(request)
        except PathNotFound:
            found = (404, {"message": f"{path} is not in the specification"})
        except OperationNotFound:
            found = (405, {"message": f"{method} {path} is not in the specification"})
        except SecurityValidationError:
            return 401, {"message": "Unauthorized"}  # a missing token is the client's to handle, not a violation
        except Exception as err:  # noqa: BLE001 - openapi-core's validation errors have no common base to name
            cause = err.__cause__ or err
            found = (400, {"message": f"{type(err).__name__}: {cause}"})
        else:
            return None
        self.violations.append(f"{method} {path}: {found[1]['message']}")
        return found

    def _check_response(self, method: str, path: str, body: Any, status: int, payload: Any) -> None:
        request = MockRequest(self.url, method, path, headers={"Authorization": f"Bearer {TOKEN}"},
                              data=json.dumps(body).encode() if body is not None else None)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self._api.validate_response(request, MockResponse(data, status_code=status))
        except Exception as err:  # noqa: BLE001 - as above
            self.violations.append(f"the fake's own answer to {method} {path}: {err.__cause__ or err}")

    def route(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        if self.refuse:
            return self.refuse, {"message": "refused"}
        refused = self._check_request(method, path, body, headers)
        if refused:
            return refused
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "Unauthorized"}
        prefix = f"/v1/projects/{REF}"
        if not path.startswith(prefix):
            return 404, {"message": "no such project"}
        resource = path.split("?", 1)[0][len(prefix):]
        status, payload = self._update(method, resource, body)
        if status < 300:
            self._check_response(method, path, body, status, payload)
        return status, payload

    def _update(self, method: str, resource: str, body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, self.state[resource]
        if resource == "/config/database/postgres":  # PUT: the body IS the new set of overrides
            overrides = {k: v for k, v in body.items() if k != "restart_database"}
            self.state[resource] = overrides
            if body.get("restart_database", True) is not False:
                self.restarts += 1
            return 200, overrides
        if resource == "/config/database/pooler":
            self.state[resource][0].update(body)
            return 200, {k: self.state[resource][0][k] for k in ("default_pool_size", "pool_mode")}
        if resource == "/network-restrictions/apply":
            self.state["/network-restrictions"]["config"] = dict(body)
            return 201, self.state["/network-restrictions"]
        if resource == "/ssl-enforcement":
            self.state[resource] = {"currentConfig": body["requestedConfig"], "appliedSuccessfully": True}
            return 200, self.state[resource]
        if resource == "/postgrest":
            self.state[resource].update(body)
            return 200, {k: v for k, v in self.state[resource].items() if k != "jwt_secret"}
        if resource == "/config/storage":
            self.state[resource].update(body)
            return 200, b""  # the document gives this 200 no body
        self.state[resource].update(body)  # /config/auth
        return 200, self.state[resource]

    def writes(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"].split(REF, 1)[1]) for r in self.requests if r["method"] != "GET"]

    def bodies(self) -> dict[tuple[str, str], Any]:
        return {(r["method"], r["path"].split(REF, 1)[1]): r["body"] for r in self.requests if r["method"] != "GET"}
