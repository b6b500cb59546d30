"""pysaml2's own log lines, brought in line with Cognate's: one line, at WARNING at most.

pysaml2 logs every check a forged or broken SAML response fails at ERROR — some with a
traceback, some with the whole offending document in the message. Those are an attacker's
input refused as designed, not failures of the gateway: at ERROR they page an operator for
each probe, and a multi-kilobyte, multi-line message lets the sender write into the logs.
`quiet_saml2_logs()` puts a filter on each `saml2.*` logger that lowers ERROR (and CRITICAL)
to WARNING, drops the traceback and keeps one line of at most 300 characters, control
characters escaped. The connector logs its own one-line summary of each refusal (INFO).
"""

from __future__ import annotations

import logging

MAX_MESSAGE = 300


class OneLineWarning(logging.Filter):
    """Lowers a record to WARNING at most and reduces it to one short line (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format: keep the template alone
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__})"
        line = message.encode("unicode_escape").decode("ascii")  # \n, \r, ESC… escaped
        if len(line) > MAX_MESSAGE:
            line = line[:MAX_MESSAGE] + f"…[{len(line) - MAX_MESSAGE} more]"
        record.msg, record.args = line, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_FILTER = OneLineWarning()


def quiet_saml2_logs() -> None:
    """Install the filter on every `saml2` logger (idempotent). The modules the connector
    uses are imported first, so the loggers they create at import exist to be filtered."""
    import saml2.client
    import saml2.entity
    import saml2.mdstore
    import saml2.response
    import saml2.sigver  # noqa: F401 - imported for their loggers

    names = [n for n in logging.root.manager.loggerDict if n == "saml2" or n.startswith("saml2.")]
    for name in ["saml2", *names]:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
