"""The account export API end to end: real PostgreSQL, DynamoDB/S3/Secrets Manager on moto, real
signed tokens through the authorizer handler, the API and worker handlers called in-process."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import sys
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import psycopg
import pytest
from moto import mock_aws

from tavari_dr.export import api as export_api
from tests.conftest import owners
from tests.http_stub import ScriptedServer
from tests.lambda_logs import FakeContext, capture_json_logs
from tests.test_jwt_auth import EC_JWK, HS_SECRET, RSA_JWK, claims, token

pytestmark = [pytest.mark.postgres, pytest.mark.moto]
ROOT = Path(__file__).resolve().parent.parent
TABLE, EXPORTS, INVOICES = "export-limits", "tavari-exports", "tavari-invoices"
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def aws(db):
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="eu-west-1")
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
        s3 = boto3.client("s3", region_name="eu-west-1", config=export_api.S3_CONFIG)
        for bucket in (EXPORTS, INVOICES):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        with psycopg.connect(db) as conn:
            for (key,) in conn.execute("SELECT pdf_key FROM public.invoices WHERE pdf_key IS NOT NULL"):
                s3.put_object(Bucket=INVOICES, Key=key, Body=b"%PDF-1.7 " + key.encode())
        sm = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = sm.create_secret(Name="BACKUP_DATABASE_URL", SecretString=db)["ARN"]
        dispatched = []
        clients = export_api.Clients(dynamodb=ddb, s3=s3, secretsmanager=sm, dispatch=dispatched.append,
                                     clock=Clock(NOON))
        settings = export_api.ExportSettings(table=TABLE, bucket=EXPORTS, database_url_secret=arn,
                                             invoice_bucket=INVOICES, exports_per_day=3, sync_row_limit=10_000)
        yield clients, settings, dispatched


def request(user_id, export_id=None, query=None):
    """An HTTP API (payload 2.0) event as API Gateway delivers it after the authorizer allowed it."""
    event = {"version": "2.0", "routeKey": "GET /api/account/export", "rawPath": "/api/account/export",
             "queryStringParameters": query or {}, "headers": {"authorization": "Bearer x"},
             "requestContext": {"authorizer": {"lambda": {"sub": user_id}} if user_id else {}}}
    if export_id is not None:
        event["pathParameters"] = {"export_id": export_id}
        event["routeKey"] = "GET /api/account/export/{export_id}"
    return event


def body(response):
    return json.loads(response["body"])


def download(clients, url):
    parsed = urlparse(url)
    bucket, key = parsed.hostname.split(".")[0], parsed.path.lstrip("/")
    return zipfile.ZipFile(io.BytesIO(clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_small_export_answers_at_once_with_a_short_lived_link_to_only_that_users_data(aws, db):
    clients, settings, dispatched = aws
    alice, bob, _ = owners(db)
    response = export_api.route(request(alice), clients, settings)
    assert response["statusCode"] == 200, response
    answer = body(response)
    assert answer["status"] == "ready" and answer["expires_in"] == 900 and not dispatched
    query = parse_qs(urlparse(answer["url"]).query)
    assert query["X-Amz-Expires"] == ["900"]
    assert "attachment" in query["response-content-disposition"][0]
    assert urlparse(answer["url"]).path == f"/exports/{alice}/{answer['export_id']}.zip"
    archive = download(clients, answer["url"])
    metadata = json.loads(archive.read("metadata.json"))
    assert metadata["user_id"] == alice
    assert answer["rows"] == sum(f.get("rows", 0) for f in metadata["files"].values())
    assert bob not in archive.read("business.jsonl").decode()
    pdfs = [n for n in archive.namelist() if n.startswith("invoices/")]
    assert pdfs and all(archive.read(n).startswith(b"%PDF") for n in pdfs)


def test_the_user_comes_only_from_the_authorizer(aws, db):
    clients, settings, _ = aws
    alice, bob, _ = owners(db)
    response = export_api.route(request(alice, query={"user_id": bob, "sub": bob}), clients, settings)
    archive = download(clients, body(response)["url"])
    assert json.loads(archive.read("metadata.json"))["user_id"] == alice
    assert export_api.route(request(None, query={"user_id": bob}), clients, settings)["statusCode"] == 401
    assert export_api.route(request("not-a-uuid"), clients, settings)["statusCode"] == 401


def test_a_user_never_sees_another_users_export(aws, db):
    clients, settings, _ = aws
    alice, bob, _ = owners(db)
    export_id = body(export_api.route(request(alice), clients, settings))["export_id"]
    assert export_api.route(request(alice, export_id), clients, settings)["statusCode"] == 200
    assert export_api.route(request(bob, export_id), clients, settings)["statusCode"] == 404
    assert export_api.route(request(bob, "../../etc"), clients, settings)["statusCode"] == 404


def test_large_export_runs_in_the_background_with_a_status_url(aws, db):
    clients, settings, dispatched = aws
    settings = export_api.ExportSettings(**{**settings.__dict__, "sync_row_limit": 10})
    alice = owners(db)[0]
    response = export_api.route(request(alice), clients, settings)
    assert response["statusCode"] == 202
    export_id = body(response)["export_id"]
    assert response["headers"]["location"] == f"/api/account/export/{export_id}"
    assert dispatched == [{"export_id": export_id, "user_id": alice}]
    running = export_api.route(request(alice, export_id), clients, settings)
    assert body(running)["status"] == "running" and "url" not in body(running)
    assert export_api.route(request(alice), clients, settings)["statusCode"] == 429  # still in flight
    export_api.work(dispatched[0], clients, settings)
    ready = body(export_api.route(request(alice, export_id), clients, settings))
    assert ready["status"] == "ready" and ready["rows"] > 10
    assert json.loads(download(clients, ready["url"]).read("metadata.json"))["user_id"] == alice
    assert export_api.route(request(alice), clients, settings)["statusCode"] in (200, 202)  # lock released


def test_one_in_flight_and_n_a_day_per_user(aws, db):
    clients, settings, _ = aws
    alice, bob, _ = owners(db)
    settings = export_api.ExportSettings(**{**settings.__dict__, "exports_per_day": 2})
    export_api.claim(clients, settings, alice, str(uuid.uuid4()))
    refused = export_api.route(request(alice), clients, settings)
    assert refused["statusCode"] == 429 and "already running" in body(refused)["error"]
    assert export_api.route(request(bob), clients, settings)["statusCode"] == 200  # limits are per user
    clients.clock.now = NOON + timedelta(seconds=export_api.LOCK_SECONDS + 1)  # a dead worker's lock lapses
    assert export_api.route(request(alice), clients, settings)["statusCode"] == 200
    daily = export_api.route(request(alice), clients, settings)
    assert daily["statusCode"] == 429 and "2 exports a day" in body(daily)["error"]
    midnight = datetime(2026, 11, 26, tzinfo=UTC)
    assert int(daily["headers"]["retry-after"]) == int((midnight - clients.clock.now).total_seconds())
    clients.clock.now = midnight + timedelta(minutes=1)
    assert export_api.route(request(alice), clients, settings)["statusCode"] == 200  # a new day


def test_a_failed_export_is_recorded_counted_and_releases_the_lock(aws, db, capsys):
    clients, settings, dispatched = aws
    alice = owners(db)[0]
    settings = export_api.ExportSettings(**{**settings.__dict__, "sync_row_limit": 0})
    export_id = body(export_api.route(request(alice), clients, settings))["export_id"]
    broken = export_api.ExportSettings(**{**settings.__dict__, "datasets": (
        export_api.Dataset("gone", "public.no_such_table", "user", "owner_id"),)})
    with pytest.raises(psycopg.errors.UndefinedTable):
        export_api.work(dispatched[0], clients, broken)
    assert body(export_api.route(request(alice, export_id), clients, settings))["status"] == "failed"
    assert '"ExportFailed"' in capsys.readouterr().out  # EMF line -> the ExportFailed alarm
    assert export_api.route(request(alice), clients, settings)["statusCode"] == 202  # not locked out


def personal_data(db, user_id):
    """A user's e-mail address, business name and one message's text: what no log line may hold."""
    with psycopg.connect(db) as conn:
        email, name = conn.execute(
            "SELECT u.email, b.name FROM auth.users u JOIN public.businesses b ON b.owner_id = u.id "
            "WHERE u.id = %s", (user_id,)).fetchone()
        message = conn.execute("SELECT m.body FROM public.messages m JOIN public.businesses b ON b.id = "
                               "m.business_id WHERE b.owner_id = %s LIMIT 1", (user_id,)).fetchone()[0]
    return email, name, message


def test_logs_say_who_when_what_and_hold_no_personal_data(aws, db, caplog):
    clients, settings, _ = aws
    alice = owners(db)[0]
    email, name, message = personal_data(db, alice)
    with caplog.at_level(logging.INFO, logger="tavari"):
        export_api.route(request(alice), clients, settings)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name.startswith("tavari")]
    assert [line["event"] for line in lines] == ["export_requested", "export_ready"]
    assert all(line["user_id"] == alice for line in lines)
    text = caplog.text
    assert email not in text and name not in text and message[:40] not in text and db not in text


# --------------------------------------------------------------------------- the Lambda handlers themselves


def load_handler(name, monkeypatch, environment):
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location(f"handler_{name}", ROOT / "lambdas" / name / "handler.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def supabase():
    server = ScriptedServer([(200, {}, {"keys": [EC_JWK, RSA_JWK]}, 0)] * 50, path="/auth/v1/.well-known/jwks.json")
    yield server
    server.close()


def authorizer_event(header):
    return {"version": "2.0", "type": "REQUEST", "routeKey": "GET /api/account/export",
            "headers": {} if header is None else {"Authorization": header}}


def test_authorizer_handler_allows_valid_tokens_and_denies_the_rest(aws, supabase, monkeypatch):
    clients, _, _ = aws
    issuer = supabase.url.removesuffix("/.well-known/jwks.json")
    project = issuer.removesuffix("/auth/v1")
    url_arn = clients.secretsmanager.create_secret(Name="SUPABASE_URL", SecretString=project)["ARN"]
    jwt_arn = clients.secretsmanager.create_secret(Name="SUPABASE_JWT_SECRET", SecretString=HS_SECRET)["ARN"]
    handler = load_handler("export_authorizer", monkeypatch, {"SUPABASE_URL_SECRET_ARN": url_arn,
                                                              "SUPABASE_JWT_SECRET_ARN": jwt_arn})
    sub = claims()["sub"]
    good = {"iss": issuer}
    for valid in (token(body=claims(**good)), token("RS256", "rsa-1", body=claims(**good)),
                  token("HS256", body=claims(**good))):
        assert handler.handler(authorizer_event(f"Bearer {valid}"), FakeContext()) == {
            "isAuthorized": True, "context": {"sub": sub}}
    denied = [None, "", "Bearer", f"Basic {token(body=claims(**good))}", "Bearer not.a.token",
              f"Bearer {token(body=claims(exp=0, **good))}", f"Bearer {token(body=claims())}",  # wrong issuer
              f"Bearer {token(body=claims(aud='anon', **good))}", f"Bearer {token('none', body=claims(**good))}",
              f"Bearer {token('HS256', key='wrong-secret-wrong-secret-wrong-secret', body=claims(**good))}"]
    for header in denied:
        assert handler.handler(authorizer_event(header), FakeContext()) == {"isAuthorized": False}, header


def handler_environment(settings):
    """The API's and the worker's environment as the stack sets it (every export in the background)."""
    return {"TAVARI_EXPORT": json.dumps({
        "table": TABLE, "bucket": EXPORTS, "database_url_secret": settings.database_url_secret,
        "sync_row_limit": 0, "invoice_bucket": None, "worker": "arn:aws:lambda:eu-west-1:123456789012:function:w",
        "datasets": [d.__dict__ for d in settings.datasets]})}


class FakeLambda:
    """The API's Lambda client: the worker invocations it dispatches, recorded."""

    def __init__(self, invoked):
        self.invoked = invoked

    def invoke(self, **kwargs):
        self.invoked.append(kwargs)


def test_api_and_worker_handlers_wire_the_same_logic(aws, db, monkeypatch):
    clients, settings, _ = aws
    alice = owners(db)[0]
    environment = handler_environment(settings)
    api = load_handler("export_api", monkeypatch, environment)
    invoked = []
    monkeypatch.setattr(api, "_lambda", FakeLambda(invoked))
    response = api.handler(request(alice), FakeContext())
    assert response["statusCode"] == 202
    (call,) = invoked
    assert call["InvocationType"] == "Event" and call["FunctionName"].endswith(":function:w")
    worker = load_handler("export_worker", monkeypatch, environment)
    result = worker.handler(json.loads(call["Payload"]), FakeContext())
    assert result["key"] == f"exports/{alice}/{json.loads(call['Payload'])['export_id']}.zip"
    assert body(api.handler(request(alice, body(response)["export_id"]), FakeContext()))["status"] == "ready"


def test_every_export_handler_logs_json_and_no_personal_data(aws, db, supabase, monkeypatch):
    """The authorizer, the API and the worker, as Lambda runs them: every line is JSON with the request
    id and the job; the worker's carry the export ID; none holds a token, an e-mail address, a name,
    a message's text or the database URL."""
    clients, settings, _ = aws
    alice = owners(db)[0]
    email, name, message = personal_data(db, alice)
    issuer = supabase.url.removesuffix("/.well-known/jwks.json")
    url_arn = clients.secretsmanager.create_secret(Name="SUPABASE_URL", SecretString=issuer.removesuffix("/auth/v1"))
    authorizer = load_handler("export_authorizer", monkeypatch, {"SUPABASE_URL_SECRET_ARN": url_arn["ARN"],
                                                                 "SUPABASE_JWT_SECRET_ARN": ""})
    environment = handler_environment(settings)
    api = load_handler("export_api", monkeypatch, environment)
    invoked = []
    monkeypatch.setattr(api, "_lambda", FakeLambda(invoked))
    worker = load_handler("export_worker", monkeypatch, environment)
    logs = capture_json_logs(monkeypatch)

    good, expired = token(body=claims(iss=issuer)), token(body=claims(iss=issuer, exp=0))
    assert authorizer.handler(authorizer_event(f"Bearer {good}"), FakeContext())["isAuthorized"]
    assert not authorizer.handler(authorizer_event(f"Bearer {expired}"), FakeContext())["isAuthorized"]
    export_id = body(api.handler(request(alice), FakeContext()))["export_id"]
    worker.handler(json.loads(invoked[0]["Payload"]), FakeContext())
    assert body(api.handler(request(alice, export_id), FakeContext()))["status"] == "ready"

    lines = logs.lines()
    assert all(line["service"] == "tavari" and line["function_request_id"] == "req-1" for line in lines)
    jobs = [line["job"] for line in lines if line["message"] == "invocation_finished"]
    assert jobs == ["export_authorizer", "export_authorizer", "export_api", "export_worker", "export_api"]
    events = [(line["job"], line["message"]["event"]) for line in lines if isinstance(line["message"], dict)]
    assert events == [("export_authorizer", "token_refused"), ("export_api", "export_requested"),
                      ("export_worker", "export_ready")]
    assert all(line["export_id"] == export_id for line in lines if line["job"] == "export_worker")
    assert [line.get("export_id") for line in lines if line["job"] == "export_api"][-1] == export_id  # its path
    for value in (good, expired, email, name, message[:40], db):
        assert value not in logs.text
