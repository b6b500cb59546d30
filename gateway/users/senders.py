"""Sending messages to users: e-mail over SMTP (aiosmtplib: STARTTLS or implicit TLS, auth),
text messages through a signed webhook (any SMS provider behind a small adapter), or either to
the log for the demo.

Templates are Jinja2 text files under `templates/<language>/`; a message is written in the
user's language (their `locale`, else the page's) when a catalogue exists for it, else in
English. A deployer's `ui.templates_dir/messages/<language>/` replaces a file of the same name.

A sender failure is a `DeliveryFailed`; callers decide what the user sees (never the mail or
SMS provider's words).
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib
import httpx
import jinja2

from gateway.errors import GatewayError
from gateway.outbound import http_client
from gateway.settings import EmailSettings, SmsSettings
from gateway.users.hooks import signature

log = logging.getLogger("cognate.email")
BUNDLED = Path(__file__).parent / "templates"


class MessageTemplates:
    """The message templates: bundled, or the deployer's where `templates_dir/messages` has a
    file of the same name."""

    def __init__(self, override: Path | None = None) -> None:
        folders = [override / "messages"] if override else []
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*folders, BUNDLED]),
            autoescape=False,  # noqa: S701 - plain-text e-mail and SMS bodies, not HTML
            undefined=jinja2.StrictUndefined,
        )

    def text(self, template: str, language: str | None, **context: object) -> str:
        """A template rendered in `language` (falling back to English)."""
        names = [f"{language}/{template}"] if language and language != "en" else []
        return self._env.select_template([*names, f"en/{template}"]).render(**context)

    def render(self, template: str, language: str | None, **context: object) -> tuple[str, str]:
        """(subject, body) from a template whose first line is `Subject: …`."""
        first, _, body = self.text(template, language, **context).partition("\n")
        return first.removeprefix("Subject:").strip(), body.lstrip("\n")


class DeliveryFailed(GatewayError):
    """The message could not be handed to the mail server."""


class EmailSender(Protocol):
    async def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one plain-text message, or raise DeliveryFailed."""
        ...


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
        # RFC 5322 §3.6: Date is required and Message-ID expected; without them some relays add
        # their own and spam filters score the mail down. The ID names the sender's domain (the
        # hostname could be a container's random name).
        message["Date"] = email.utils.format_datetime(datetime.now(UTC))
        domain = email.utils.parseaddr(self._settings.from_address)[1].rpartition("@")[2]
        message["Message-ID"] = email.utils.make_msgid(domain=domain or "cognate.invalid")
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


class SmsSender(Protocol):
    async def send(self, to: str, message: str, purpose: str) -> None:
        """Deliver one text message, or raise DeliveryFailed."""
        ...


class ConsoleSms:
    """Writes text messages to the log (demo mode: there is no SMS provider)."""

    async def send(self, to: str, message: str, purpose: str) -> None:
        log.warning(
            "text message (console sender; not delivered)",
            extra={"to": to, "purpose": purpose, "body": message},
        )


class WebhookSms:
    """A signed JSON POST per message to the deployer's SMS adapter: 2xx means accepted."""

    def __init__(self, settings: SmsSettings) -> None:
        assert settings.url and settings.secret  # noqa: S101 - the settings validator says so
        self._url = str(settings.url)
        self._secret = settings.secret
        self._http = http_client(settings.timeout)

    async def send(self, to: str, message: str, purpose: str) -> None:
        body = json.dumps({"to": to, "message": message, "purpose": purpose}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Cognate-Signature": signature(self._secret, int(time.time()), body),
        }
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("text message not delivered", extra={"error": type(exc).__name__})
            raise DeliveryFailed("the SMS webhook did not answer") from None
        if not response.is_success:
            log.warning("text message refused", extra={"status": response.status_code})
            raise DeliveryFailed(f"the SMS webhook answered {response.status_code}")

    async def close(self) -> None:
        await self._http.aclose()


def build_sms_sender(settings: SmsSettings) -> SmsSender:
    return WebhookSms(settings) if settings.sender == "webhook" else ConsoleSms()
