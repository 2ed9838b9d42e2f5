"""boto3 clients, the secret cache of the Lambdas, request accounting and CloudFormation-output discovery.

Every boto3 client of the project is made by ``client`` (``AwsTarget.client`` for the CLI): that is
the one place botocore's retry policy is set (docs/decisions/0018). Nothing else retries AWS calls.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tavari_dr.core.costmodel import Counts, kind_of

if TYPE_CHECKING:
    from botocore.config import Config, _RetryDict

# boto3 and botocore are imported where a client is made or an AWS error is caught, never when this module
# is: `tavari-dr --help` and a usage error need neither (docs/decisions/0034). EMULATOR_CONFIG and
# RegionDown, which need botocore to exist, are built on first use (__getattr__ at the end).


def _emulator_config() -> Config:
    """Local emulators (moto) give multipart objects a whole-object checksum that does not match;
    S3 marks them composite ("-N"), which botocore never validates. Against an emulator the
    automatic response check is therefore off; the project verifies its own sha256 end to end."""
    from botocore.config import Config

    return Config(response_checksum_validation="when_required")

# botocore's retry policy by service (docs/decisions/0018): "standard" mode everywhere, exponential
# backoff with full jitter (at most 20 s) on throttling (SlowDown, Throttling...), 5xx, timeouts and
# connection errors, with botocore's retry quota against retry storms. Not "adaptive": its client-side
# token bucket starts from the rate it measured, which for a restore's few parallel copies is a few
# calls a second, and after SlowDown drops towards 0.5 calls/s: measured here (tests/test_bucket_restore,
# 13 keys, 37 throttled calls, backoff waits recorded, not slept), adaptive took 51 s in its token
# bucket alone, standard 1.2 s. total_max_attempts counts the first call
# (botocore's max_attempts would count retries only).
RETRIES: dict[str, dict[str, Any]] = {
    # The bucket restore and the backups drive S3 at up to --concurrency calls in parallel; a prefix
    # answering 503 SlowDown is S3's expected throttle there, worth a longer patience per call.
    "s3": {"mode": "standard", "total_max_attempts": 10},
    # One quick call each on the way to a failure report or an interactive answer: a short wait.
    "sts": {"mode": "standard", "total_max_attempts": 3},
    "cloudformation": {"mode": "standard", "total_max_attempts": 3},
}
DEFAULT_RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 5}


def client_config(service: str, config: Config | None = None, *, emulator: bool = False) -> Config:
    """The retry policy of ``service``, merged with ``config`` (its settings win) and, against an
    emulator, EMULATOR_CONFIG."""
    from botocore.config import Config

    policy = dict(RETRIES.get(service, DEFAULT_RETRIES))
    # An operator's own AWS_MAX_ATTEMPTS / AWS_RETRY_MODE (botocore's documented settings) still win:
    # a Config's retries would silently override them.
    if os.environ.get("AWS_MAX_ATTEMPTS"):
        policy.pop("total_max_attempts")
    if os.environ.get("AWS_RETRY_MODE"):
        policy.pop("mode")
    merged = Config(retries=cast("_RetryDict", policy)) if policy else Config()
    if emulator:
        merged = merged.merge(_lazy("EMULATOR_CONFIG"))
    return merged.merge(config) if config is not None else merged


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
           config: Config | None = None, **kwargs: Any) -> Any:
    """A boto3 client with the project's retry policy (and, with ``endpoint_url``, the emulator's
    settings); counted when a drill asked this process to count its requests."""
    import boto3

    # boto3-stubs type boto3.client for each literal service name; this takes any name, and its callers Any.
    any_client: Any = boto3.client
    made = any_client(service, region_name=region, endpoint_url=endpoint_url,
                      config=client_config(service, config, emulator=endpoint_url is not None), **kwargs)
    if _process_counter is not None:
        _process_counter.attach(made)
    if endpoint_url is not None:  # an emulator: only there may a drill take a region down
        _refuse_the_region_that_is_down(made)
    return made


class DiscoveryError(RuntimeError):
    """A deployed resource could not be found; the message says what to deploy or pass."""


@dataclass(frozen=True)
class AwsTarget:
    """Where the CLI talks to: real AWS, or a local emulator through endpoint_url."""

    region: str | None  # None: boto3's own default (AWS_REGION, profile)
    dr_region: str | None = None
    endpoint_url: str | None = None

    def client(self, service: str, *, dr: bool = False, region: str | None = None) -> Any:
        """A client in the primary region, the DR region (``dr``), or the ``region`` named."""
        region = region or (self.dr_region if dr and self.dr_region else self.region)
        return client(service, region=region, endpoint_url=self.endpoint_url)


class SecretCache:
    """Reads a secret at most once per ``ttl`` seconds (Lambda containers are reused)."""

    def __init__(self, client: Any, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._client, self._ttl, self._clock = client, ttl, clock
        self._values: dict[str, tuple[float, str]] = {}

    def get(self, secret_id: str) -> str:
        cached = self._values.get(secret_id)
        if cached and self._clock() - cached[0] < self._ttl:
            return cached[1]
        value: str = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
        self._values[secret_id] = (self._clock(), value)
        return value


# --------------------------------------------------------------------------- request accounting

# Set by a drill (local or quarterly) for each command it runs: the command writes what it asked of
# AWS there when it exits, so the drill's cost model prices requests and bytes, never wall time.
REQUEST_COUNTS_ENV = "TAVARI_DR_REQUEST_COUNTS"


class RequestCounter:
    """Counts every HTTP request the clients it is attached to send, by priced kind (a retried call
    is as many requests as attempts: each costs S3 a round trip), the bytes they send, and the bytes
    of every object they read."""

    def __init__(self) -> None:
        self.counts = Counts()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        service = client.meta.service_model.service_name
        client.meta.events.register("before-send", lambda **kw: self._before_send(service, **kw))
        client.meta.events.register("after-call.s3.GetObject", self._after_get)
        return client

    def _before_send(self, service: str, *, request: Any, event_name: str, **_: Any) -> None:
        # "before-send.<service-id>.<Operation>", once per attempt.
        kind = kind_of(service, event_name.rsplit(".", 1)[-1])
        # With flexible checksums the body is sent aws-chunked: the payload is the decoded length.
        size = request.headers.get("X-Amz-Decoded-Content-Length") or request.headers.get("Content-Length") or 0
        with self._lock:
            self.counts.requests[kind] = self.counts.requests.get(kind, 0) + 1
            self.counts.bytes_written += int(size)

    def _after_get(self, *, parsed: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.counts.bytes_read += int(parsed.get("ContentLength") or 0)


_process_counter: RequestCounter | None = None


def count_requests_of_this_process() -> None:
    """If a drill asked for it (``TAVARI_DR_REQUEST_COUNTS``), count every client this process makes
    and write the counts as JSON when it exits."""
    global _process_counter
    path = os.environ.get(REQUEST_COUNTS_ENV)
    if not path or _process_counter is not None:
        return
    counter = _process_counter = RequestCounter()
    counter.counts.processes = 1

    def write() -> None:
        Path(path).write_text(json.dumps(counter.counts.to_json()))

    atexit.register(write)


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ValidationError":
            region = cloudformation.meta.region_name
            raise DiscoveryError(
                f"stack {stack_name} is not deployed in {region}; deploy it, or name the resource explicitly"
            ) from None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


# --------------------------------------------------------------------------- a region outage, in a drill

# Set by the local drill's region-outage scenario for each command it runs: a JSON file naming the region
# that is down and the buckets that live there. Honoured only by clients of an emulator (endpoint_url set),
# never against AWS. moto's buckets are global (any client region reaches any bucket), so a refusal by the
# client's region alone would let a DR-region client read a primary-region bucket: the bucket's own region
# decides, as do the region in any ARN a call names (a secret, a key), and the client's region.
OUTAGE_ENV = "TAVARI_DR_DRILL_OUTAGE"


def _region_down() -> type[Exception]:
    from botocore.exceptions import EndpointConnectionError

    class RegionDown(EndpointConnectionError):
        """What a call to a region that is down meets: no connection (botocore's own error, so callers see
        exactly what they would in an outage), naming the resource that lives there."""

        fmt = 'Could not connect to the endpoint URL: "{endpoint_url}" (region {region} is down: {resource})'

    RegionDown.__module__ = __name__
    return RegionDown


@dataclass(frozen=True)
class Outage:
    region: str
    buckets: frozenset[str]

    @classmethod
    def load(cls, path: str) -> Outage:
        document = json.loads(Path(path).read_text())
        return cls(document["region"], frozenset(document.get("buckets", ())))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"region": self.region, "buckets": sorted(self.buckets)}))

    def refusal(self, client_region: str | None, service: str, params: dict[str, Any]) -> str | None:
        """What of this call lives in the region that is down (None: nothing, it may go)."""
        if client_region == self.region:
            return f"{service} client in {self.region}"
        for name in ("Bucket", "CopySource"):
            value = params.get(name)
            bucket = value.get("Bucket") if isinstance(value, dict) else (
                value.lstrip("/").split("/", 1)[0] if isinstance(value, str) else None)
            if bucket in self.buckets:
                return f"bucket {bucket}"
        for value in params.values():
            if isinstance(value, str) and value.startswith("arn:") and value.split(":")[3:4] == [self.region]:
                return value
        return None


def _refuse_the_region_that_is_down(made: Any) -> None:
    path = os.environ.get(OUTAGE_ENV)
    if not path:
        return
    outage = Outage.load(path)
    region, service = made.meta.region_name, made.meta.service_model.service_name

    def refuse(params: dict[str, Any], **_: Any) -> None:
        resource = outage.refusal(region, service, params)
        if resource is not None:
            raise _lazy("RegionDown")(endpoint_url=made.meta.endpoint_url, region=outage.region, resource=resource)

    # Before the request is built: a refused call is never sent, and never retried.
    made.meta.events.register("before-parameter-build", refuse)


_LAZY: dict[str, Callable[[], Any]] = {"EMULATOR_CONFIG": _emulator_config, "RegionDown": _region_down}
_built: dict[str, Any] = {}


def _lazy(name: str) -> Any:
    if name not in _built:
        _built[name] = _LAZY[name]()
    return _built[name]


def __getattr__(name: str) -> Any:  # PEP 562: `from tavari_dr.core.aws import EMULATOR_CONFIG` still works
    if name in _LAZY:
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
