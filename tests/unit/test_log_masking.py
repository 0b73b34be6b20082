"""Service logs: the secrets of the runs in flight are masked in messages and tracebacks."""

import logging

from nameko_services.log_masking import MaskingFilter, SecretValues, known


def make_logger(registry: SecretValues, records: list[str]) -> logging.Logger:
    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Capture()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(MaskingFilter(registry=registry))
    logger = logging.getLogger(f"test.masking.{id(registry)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_known_values_are_masked_in_messages_arguments_and_tracebacks():
    registry, records = SecretValues(), []
    log = make_logger(registry, records)
    with known(["s3cr3t-value", 123456789, {"k": "v"}], registry):
        log.info("token=%s n=%d", "s3cr3t-value", 123456789)
        try:
            raise RuntimeError("failed with s3cr3t-value")
        except RuntimeError:
            log.exception("boom")
    assert records[0] == "token=*** n=***"
    assert "s3cr3t-value" not in records[1] and "RuntimeError: failed with ***" in records[1]


def test_values_are_unmasked_only_when_no_run_uses_them_any_more():
    registry, records = SecretValues(), []
    log = make_logger(registry, records)
    with known(["shared-secret"], registry):
        with known(["shared-secret", "other"], registry):
            log.info("a shared-secret other")
        log.info("b shared-secret other")
    log.info("c shared-secret other")
    assert records == ["a *** ***", "b *** other", "c shared-secret other"]


def test_nothing_known_leaves_records_alone():
    registry, records = SecretValues(), []
    log = make_logger(registry, records)
    with known([None, "", True], registry):
        log.info("plain %s", "text")
    assert records == ["plain text"]
