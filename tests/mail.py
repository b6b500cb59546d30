"""Real receivers on loopback for what the gateway sends: an SMTP server (aiosmtpd) for
e-mail, the SMS webhook's receiver (`sms`, a fixture), and the `Inbox` both keep messages in."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.helpers import AppServer

T = TypeVar("T")


class Inbox(Generic[T]):
    """Messages arriving on a server's thread; `next_for` waits (off the event loop) for the
    `seen`-th message that matches."""

    def __init__(self) -> None:
        self.messages: list[T] = []
        self.arrived = threading.Condition()

    def add(self, message: T) -> None:
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()

    def _wait(self, matches: Callable[[T], bool], seen: int) -> T:
        with self.arrived:
            mine = lambda: [m for m in self.messages if matches(m)]  # noqa: E731
            assert self.arrived.wait_for(lambda: len(mine()) > seen, timeout=15), "nothing came"
            return mine()[seen]

    async def wait_for(self, matches: Callable[[T], bool], seen: int = 0) -> T:
        return await asyncio.to_thread(self._wait, matches, seen)


class Mailbox(Inbox[Message]):
    """The SMTP server's handler: keeps what it receives."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.add(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 OK"

    async def next_for(self, address: str, seen: int = 0) -> Message:
        return await self.wait_for(lambda m: m["To"] == address, seen)


def smtp_settings(port: int) -> dict[str, Any]:
    """The gateway's `email` settings for the loopback SMTP server on `port`."""
    return {
        "sender": "smtp",
        "from_address": "Cognate <no-reply@example.com>",
        "smtp": {"host": "127.0.0.1", "port": port, "starttls": False},
    }


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


def code_in(message: Message) -> str:
    found = re.search(r"\b(\d{6})\b", body_of(message))
    assert found, body_of(message)
    return found.group(1)


SMS_SECRET = "sms-webhook-secret-0123456789"


class SmsReceiver(Inbox[dict[str, Any]]):
    """The deployer's SMS adapter: keeps every correctly signed message."""

    def __init__(self) -> None:
        super().__init__()
        self.server = AppServer(Starlette(routes=[Route("/sms", self.receive, methods=["POST"])]))

    async def receive(self, request: Request) -> JSONResponse:
        body = await request.body()
        fields = dict(p.split("=", 1) for p in request.headers["x-cognate-signature"].split(","))
        mac = hmac.new(SMS_SECRET.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
        if not hmac.compare_digest(mac.hexdigest(), fields["v1"]):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        self.add(await request.json())
        return JSONResponse({"queued": True})

    async def code_for(self, number: str, seen: int = 0) -> str:
        """The code in the `seen`-th message to `number`, once it has arrived."""
        message = await self.wait_for(lambda m: m["to"] == number, seen)
        found = re.search(r"\b(\d{6})\b", message["message"])
        assert found
        return found.group(1)


def sms_settings(receiver: SmsReceiver) -> dict[str, Any]:
    """user_pool.sms for a gateway that texts through `receiver`."""
    return {"sender": "webhook", "url": f"{receiver.server.url}/sms", "secret": SMS_SECRET}
