"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the e-mail tests."""

from __future__ import annotations

import asyncio
import re
import threading
from email import message_from_bytes
from email.message import Message


class Mailbox:
    """Collects what the SMTP server receives; `next_for(address)` waits for a message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        with self.arrived:
            self.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
            self.arrived.notify_all()
        return "250 OK"

    def _wait(self, address: str, seen: int) -> Message:
        with self.arrived:
            ok = self.arrived.wait_for(
                lambda: len([m for m in self.messages if m["To"] == address]) > seen, timeout=15
            )
            assert ok, f"no mail for {address}"
            return [m for m in self.messages if m["To"] == address][seen]

    async def next_for(self, address: str, seen: int = 0) -> Message:
        return await asyncio.to_thread(self._wait, address, seen)


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


def code_in(message: Message) -> str:
    found = re.search(r"\b(\d{6})\b", body_of(message))
    assert found, body_of(message)
    return found.group(1)
