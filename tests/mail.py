"""Real receivers on loopback for what the gateway sends: an SMTP server (aiosmtpd) for
e-mail, and the `Inbox` both it and the SMS webhook receiver keep messages in."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from typing import Any, Generic, TypeVar

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
