"""Structured logs and traces of the Lambdas and of the CLI (docs/decisions/0018, 0029).

Logs: Powertools for AWS Lambda's Logger writes one JSON object a line, with the Lambda request id and
cold start, and the keys appended here. Traces: OpenTelemetry (the X-Ray SDK reached its end of support
on 25 February 2027: docs/decisions/0029), with X-Ray-format trace IDs, the X-Ray propagator (a Lambda
continues the trace of its invocation, a state machine's or the scheduler's), and botocore's
instrumentation (every AWS call a child span). Spans go by OTLP/HTTP to an ADOT collector, the Lambda
layer's or the ECS task's sidecar, which sends them to X-Ray; the job and the backup or restore ID are
X-Ray annotations, so a filter expression such as ``annotation.run = "<drill execution ARN>"`` finds one
quarterly drill end to end.

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

# The X-Ray exporter of the ADOT collector makes the span attributes this list names annotations (indexed,
# searchable); every other attribute becomes metadata (X-Ray developer guide, "Migrating to OpenTelemetry").
XRAY_ANNOTATIONS = "aws.xray.annotations"
# Where spans go: OTLP/HTTP to an ADOT collector on the same host, the Lambda layer's extension or the ECS
# task's sidecar (backup_constructs sets it on every function and task). Unset (tests, an operator's
# shell), spans are made and dropped: there is no collector to send them to.
EXPORT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

# The Powertools Logger and the tracer are made on first use, not when this module is imported: Powertools
# imports botocore and the tracer OpenTelemetry, which `tavari-dr --help` or a usage error never needs
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


class Tracer:
    """The few things the runtime asks of a tracer, on OpenTelemetry: a span per Lambda invocation
    (``invocation``) or CLI command (``command``), annotations on the current span (``put_annotation``),
    and ``flush`` before a Lambda is frozen. ``provider`` is the SDK's TracerProvider (tests add an
    in-memory exporter to it). Powertools 3.37's Tracer is the X-Ray SDK's and has no OpenTelemetry mode,
    so this small class stands where it stood."""

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
        from opentelemetry.propagators.aws import AwsXRayLambdaPropagator
        from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        self._trace = trace
        # X-Ray's trace ID carries its start time: the generator makes IDs X-Ray accepts.
        self.provider = TracerProvider(id_generator=AwsXRayIdGenerator(),
                                       resource=Resource.create({"service.name": SERVICE}))
        if any(os.environ.get(name) for name in EXPORT_VARIABLES):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self.provider.get_tracer("tavari_dr")
        self._lambda_parent = AwsXRayLambdaPropagator()  # the invocation's _X_AMZN_TRACE_ID
        # botocore alone is instrumented (every AWS call a child span: service, operation, region, request
        # id; for S3 no object key). No HTTP instrumentation: it would record the URLs the alert router
        # posts to, and a webhook's URL is its secret. skip_dep_check: the Lambda runtime's botocore is
        # importable but its distribution metadata need not be on the bundle's path.
        instrumentor: Any = BotocoreInstrumentor  # the package ships no type hints
        instrumentor().instrument(tracer_provider=self.provider, skip_dep_check=True)
        self._cold = True

    def put_annotation(self, key: str, value: str) -> None:
        """``key`` as an X-Ray annotation of the current span (none outside a span: nothing to annotate)."""
        span = self._trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute(key, value)
        named = list(getattr(span, "attributes", {}).get(XRAY_ANNOTATIONS, ()))
        if key not in named:
            span.set_attribute(XRAY_ANNOTATIONS, [*named, key])

    def invocation(self, job: str, context: Any) -> Any:
        """The span of one Lambda invocation, the child of the one Lambda's active tracing started (read from
        _X_AMZN_TRACE_ID by the X-Ray Lambda propagator). A server span: X-Ray makes it a segment."""
        from opentelemetry.trace import SpanKind

        cold, self._cold = self._cold, False
        attributes = {"faas.coldstart": cold, "cloud.provider": "aws"}
        request_id = getattr(context, "aws_request_id", None)
        if isinstance(request_id, str):
            attributes["faas.invocation_id"] = request_id
        return self._span(job, self._lambda_parent.extract({}), SpanKind.SERVER, attributes)

    def command(self, name: str) -> Any:
        """The root span of one CLI command (a scheduled task's run)."""
        from opentelemetry.trace import SpanKind

        return self._span(name, None, SpanKind.SERVER, {})

    def _span(self, name: str, parent: Any, kind: Any, attributes: dict[str, Any]) -> Any:
        import contextlib

        from opentelemetry.trace import Status, StatusCode

        @contextlib.contextmanager
        def span() -> Any:
            # The exception is neither recorded nor put in the status text: its message may hold what a
            # log line may not (docs/decisions/0018); its type marks the span failed (an X-Ray fault).
            with self._tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes,
                                                    record_exception=False, set_status_on_exception=False) as s:
                try:
                    yield s
                except BaseException as err:
                    s.set_status(Status(StatusCode.ERROR, type(err).__name__))
                    raise

        return span()

    def flush(self) -> None:
        """Export what has ended before Lambda freezes the process (a batch would wait for the next call)."""
        self.provider.force_flush(timeout_millis=2000)


def _tracer() -> Tracer:
    if "tracer" not in _made:
        _logger()
        _made["tracer"] = Tracer()
    tracer: Tracer = _made["tracer"]
    return tracer


def command_span(name: str) -> Any:
    """The CLI command's root span where a collector takes spans (EXPORT_VARIABLES: the scheduled tasks, beside
    their ADOT sidecar), so its AWS calls and correlation keys form one trace; elsewhere nothing, and
    OpenTelemetry is not even imported (a usage error is found after this runs: docs/decisions/0034)."""
    import contextlib

    if not any(os.environ.get(variable) for variable in EXPORT_VARIABLES):
        return contextlib.nullcontext()
    return _tracer().command(name)


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
    """The handler decorator of every Lambda: JSON logs with the request id and ``job``, a span (an X-Ray
    segment) annotated with ``job`` and the event's ``correlation`` keys (``run``: the ID that ties
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

        @functools.wraps(handler)
        def traced(event: Any, context: Any) -> Any:
            try:
                with tracer.invocation(job, context):
                    return correlated(event, context)
            finally:
                tracer.flush()

        injected: Callable[..., Any] = logger.inject_lambda_context(traced, log_event=False, clear_state=True)
        return injected

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
