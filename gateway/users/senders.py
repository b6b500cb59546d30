"""Sending messages to users: e-mail over SMTP (aiosmtplib: STARTTLS or implicit TLS, auth),
or to the log for the demo. Templates are Jinja2 text files under `templates/`.

A sender failure is a `DeliveryFailed`; callers decide what the user sees (never the SMTP
server's words).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib
import jinja2

from gateway.errors import GatewayError
from gateway.settings import EmailSettings

log = logging.getLogger("cognate.email")

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=False,  # noqa: S701 - plain-text e-mail bodies, not HTML
    undefined=jinja2.StrictUndefined,
)


class DeliveryFailed(GatewayError):
    """The message could not be handed to the mail server."""


class EmailSender(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one plain-text message, or raise DeliveryFailed."""
        ...


def render(template: str, **context: object) -> tuple[str, str]:
    """(subject, body) from a template whose first line is `Subject: …`."""
    text = _templates.get_template(template).render(**context)
    first, _, body = text.partition("\n")
    return first.removeprefix("Subject:").strip(), body.lstrip("\n")


class ConsoleSender:
    """Writes messages to the log (demo mode: there is no mail server)."""

    async def send(self, to: str, subject: str, body: str) -> None:
        log.warning(
            "e-mail (console sender; not delivered)",
            extra={"to": to, "subject": subject, "body": body},
        )


class SmtpSender:
    """E-mail through an SMTP server."""

    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings

    async def send(self, to: str, subject: str, body: str) -> None:
        smtp = self._settings.smtp
        message = EmailMessage()
        message["From"] = self._settings.from_address
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            await aiosmtplib.send(
                message,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password,
                use_tls=smtp.tls,
                start_tls=smtp.starttls and not smtp.tls,
                timeout=smtp.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("e-mail not delivered", extra={"error": type(exc).__name__})
            raise DeliveryFailed("the mail server did not accept the message") from exc


def build_sender(settings: EmailSettings) -> EmailSender:
    return SmtpSender(settings) if settings.sender == "smtp" else ConsoleSender()
