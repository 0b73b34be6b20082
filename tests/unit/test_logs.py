"""Log records carry their context (service, tenant, event, execution, trace, request) in both
formats; json is one object per line; secrets are masked in both."""

import json
import logging

import eventlet
import pytest

from nameko_services import logs
from nameko_services.log_masking import MaskingFilter, SecretValues, known

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def make_logger(kind: str, lines: list[str], registry: SecretValues | None = None
                ) -> logging.Logger:
    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture()
    handler.setFormatter(logs.Formatter(kind))
    handler.addFilter(MaskingFilter(registry=registry or SecretValues()))
    logger = logging.getLogger(f"test.logs.{kind}.{id(lines)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


@pytest.fixture(autouse=True)
def service_name(monkeypatch):
    monkeypatch.setattr(logs, "_service", "worker")


def test_json_is_one_object_per_record_with_the_bound_and_extra_context():
    lines: list[str] = []
    log = make_logger("json", lines)
    with logs.bound(tenant_id=3, trace_id=TRACE):
        log.info("execution %s done", 17, extra={"execution_id": 17, "duration_ms": 4.5})
    log.warning("outside")
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "execution 17 done"
    assert first["level"] == "INFO" and first["service"] == "worker"
    assert first["time"].startswith("20") and first["logger"].startswith("test.logs.json")
    assert (first["execution_id"], first["tenant_id"], first["trace_id"]) == (17, 3, TRACE)
    assert first["duration_ms"] == 4.5  # any other extra= field too
    assert "trace_id" not in second and second["level"] == "WARNING"
    assert all("\n" not in line for line in lines)


def test_text_ends_the_line_with_the_context_before_any_traceback():
    lines: list[str] = []
    log = make_logger("text", lines)
    with logs.bound(execution_id=9, trace_id=TRACE):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    log.info("plain")
    head, _, trace = lines[0].partition("\n")
    assert head.endswith(f"failed [execution_id=9 trace_id={TRACE}]")
    assert "RuntimeError: boom" in trace
    assert lines[1].endswith(" plain")


def test_secrets_are_masked_in_json_messages_and_tracebacks():
    registry, lines = SecretValues(), []
    log = make_logger("json", lines, registry)
    with known(["s3cr3t-value"], registry):
        try:
            raise RuntimeError("failed with s3cr3t-value")
        except RuntimeError:
            log.exception("token=%s", "s3cr3t-value")
    assert "s3cr3t-value" not in lines[0]
    record = json.loads(lines[0])
    assert record["message"] == "token=***"
    assert "RuntimeError: failed with ***" in record["exc_info"]


def test_each_greenthread_has_its_own_context():
    lines: list[str] = []
    log = make_logger("json", lines)

    def work(execution_id: int) -> None:
        with logs.bound(execution_id=execution_id):
            eventlet.sleep(0)  # the other greenthread binds its own meanwhile
            log.info("run")

    pool = eventlet.GreenPool()
    for n in (1, 2):
        pool.spawn(work, n)
    pool.waitall()
    assert sorted(json.loads(line)["execution_id"] for line in lines) == [1, 2]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="text, json"):
        logs.Formatter("xml")
