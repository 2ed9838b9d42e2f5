"""Structured logs and traces of the Lambdas and of the CLI's ``--log-format json`` (docs/decisions/0018).

Powertools for AWS Lambda does the work: its Logger writes one JSON object a line, with the Lambda
request id and cold start, and the keys appended here; its Tracer (the X-Ray SDK underneath) traces
each invocation and every boto3 call in it, with the job and the backup or restore ID as annotations,
so a filter expression such as ``annotation.run = "<drill execution ARN>"`` finds one quarterly
drill end to end.

Every module of the runtime logs through the stdlib logger ``tavari.<capability>``; the Powertools
Logger owns their parent ``tavari``, so those lines are JSON too, with the same keys. What may be logged
is said where it is logged: IDs, names, counts, durations, outcomes — never a token, an e-mail
address or a row's contents (tests/test_observability.py holds every handler to that).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

SERVICE = "tavari"  # the stdlib logger every runtime module logs under, as tavari.<capability>
# The correlation keys: each is a log key and, where set, an X-Ray annotation (indexed, searchable).
CORRELATION_KEYS = ("job", "run", "backup_id", "restore_id", "export_id")

# The Powertools Logger and Tracer are made on first use, not when this module is imported: Powertools
# imports botocore and the Tracer the X-Ray SDK, which `tavari-dr --help` or a usage error never needs
# (docs/decisions/0034). A Lambda makes both when its handler is decorated (lambda_handler), as before;
# `observability.logger`, `.tracer` and `._JSON_HANDLER` are still there (__getattr__ at the end).
_made: dict[str, Any] = {}
_cli_format: str | None = None  # the CLI's --log-format, applied again to a Logger made after it was set


def _logger() -> Any:
    if "logger" not in _made:
        from aws_lambda_powertools import Logger

        # stderr: the CLI's stdout is for its answers (--format json is one document); in Lambda both streams
        # reach the function's log group.
        made = Logger(service=SERVICE, stream=sys.stderr, use_rfc3339=True, utc=True)
        _made.update(logger=made, _JSON_HANDLER=made.logger_handler)
        if _cli_format is not None:  # the Logger took over `tavari`'s handlers: the CLI's choice stands
            cli_logging(_cli_format)
    return _made["logger"]


def _import_xray_sdk_without_a_profile() -> None:
    """The X-Ray SDK builds its sampler's client (to the local daemon, with its own dummy credentials) when
    it is imported, through a botocore session that still reads AWS_PROFILE: a profile that does not exist
    (a typo) raised at import, a 56-line traceback before even ``--help``. Imported with the profile
    hidden; every client of the CLI's own still reads it, and a missing one is then one line."""
    hidden = {name: os.environ.pop(name) for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE") if name in os.environ}
    try:
        import aws_xray_sdk.core  # noqa: F401 - imported for its side effect, see above
    finally:
        os.environ.update(hidden)


def _tracer() -> Any:
    if "tracer" not in _made:
        _logger()
        _import_xray_sdk_without_a_profile()
        from aws_lambda_powertools import Tracer

        # Outside Lambda (tests, the CLI) Powertools disables the tracer by itself: no daemon listens there.
        # botocore alone is patched (every AWS call a subsegment): the X-Ray SDK's HTTP patches would record
        # the URLs the alert router posts to, and a webhook's URL is its secret.
        _made["tracer"] = Tracer(service=SERVICE, patch_modules=("botocore",))
        _no_object_keys_in_traces()
    return _made["tracer"]


def _no_object_keys_in_traces() -> None:
    """The botocore patch copies chosen request parameters into each subsegment, for S3 the object's
    Key (and CopySource): a key is an application's file name and may name a customer. Traces keep
    the operation and the bucket; the X-Ray SDK has no setting for this, its table is edited."""
    from aws_xray_sdk.ext import boto_utils

    for operation in boto_utils.whitelist["services"].get("s3", {}).get("operations", {}).values():
        if "request_parameters" in operation:
            operation["request_parameters"] = [p for p in operation["request_parameters"]
                                               if p not in ("Key", "CopySource")]


def correlate(**keys: str | None) -> None:
    """Add correlation keys (CORRELATION_KEYS) to every later log line of this invocation or command,
    and to the current trace as annotations."""
    unknown = set(keys) - set(CORRELATION_KEYS)
    if unknown:
        raise ValueError(f"not correlation keys: {sorted(unknown)}; known: {', '.join(CORRELATION_KEYS)}")
    given = {k: v for k, v in keys.items() if v}
    _logger().append_keys(**given)
    tracer = _tracer()
    for key, value in given.items():
        tracer.put_annotation(key, value)


Correlation = Callable[[dict[str, Any]], dict[str, Any]]


def from_event(**fields: str) -> Correlation:
    """Correlation keys read from the event: ``from_event(run="execution")`` takes ``run`` from the
    event's ``execution`` (the scheduler's execution id, the drill's Step Functions execution)."""
    return lambda event: {key: str(event[field]) for key, field in fields.items() if event.get(field)}


Handler = Callable[..., Any]


def lambda_handler(job: str, *, correlation: Correlation | None = None) -> Callable[[Handler], Handler]:
    """The handler decorator of every Lambda: JSON logs with the request id and ``job``, an X-Ray
    subsegment annotated with ``job`` and the event's ``correlation`` keys (``run``: the ID that ties
    one scheduled run or one drill together), one ``invocation_finished`` line with its outcome and
    duration.

    Neither the event nor the response is logged or attached to the trace: they may carry a token
    (the authorizer's) or rows (the export's). A failure is logged by its exception type only."""

    def decorate(handler: Handler) -> Handler:
        logger, tracer = _logger(), _tracer()

        @functools.wraps(handler)
        def correlated(event: Any, context: Any) -> Any:
            correlate(job=job, **(correlation(event) if correlation and isinstance(event, dict) else {}))
            started = time.monotonic()
            try:
                response = handler(event, context)
            except Exception as err:
                logger.error("invocation_finished", extra={"outcome": "error", "error": type(err).__name__,
                                                           "seconds": round(time.monotonic() - started, 3)})
                raise
            logger.info("invocation_finished", extra={"outcome": "ok",
                                                      "seconds": round(time.monotonic() - started, 3)})
            return response

        traced = tracer.capture_lambda_handler(correlated, capture_response=False, capture_error=False)
        return logger.inject_lambda_context(traced, log_event=False, clear_state=True)

    return decorate


def current(key: str) -> str | None:
    """A correlation key of this invocation or command (e.g. ``run``, for the reports it writes)."""
    value = _logger().get_current_keys().get(key)
    return str(value) if value is not None else None


def cli_logging(log_format: str) -> None:
    """The CLI's logs on stderr: ``json``, the Lambdas' structured lines with the same correlation keys
    (for a scheduled task whose logs are searched by backup ID); ``text``, warnings and errors only,
    as plain lines."""
    global _cli_format
    _cli_format = log_format
    if log_format == "json":
        _logger()
    root = logging.getLogger(SERVICE)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if "logger" in _made:  # one command, one set of keys (tests run many)
        _made["logger"].remove_keys([k for k in CORRELATION_KEYS])
    if log_format == "json":
        root.addHandler(_made["_JSON_HANDLER"])
        root.setLevel(logging.INFO)
        return
    text = logging.StreamHandler(sys.stderr)
    text.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(text)
    root.setLevel(logging.WARNING)


def __getattr__(name: str) -> Any:  # PEP 562: `observability.logger`, `.tracer`, `._JSON_HANDLER`, made on first use
    if name in ("logger", "_JSON_HANDLER"):
        _logger()
        return _made[name]
    if name == "tracer":
        return _tracer()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
