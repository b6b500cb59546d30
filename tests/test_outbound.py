"""The IdP client against a raw HTTP/1.1 peer on loopback: what it sends, where, and what it
does with what comes back (cookies, redirects, huge bodies, silence, an environment proxy)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gateway.outbound import IdpClient, OutboundError


@dataclass
class Peer:
    """Answers every request with `answer` (raw bytes) and records each request's head."""

    answer: bytes = b""
    heads: list[str] = field(default_factory=list)
    silent: bool = False
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                self.heads.append(head)
                length = next(
                    (
                        int(line.split(":", 1)[1])
                        for line in head.split("\r\n")
                        if line.lower().startswith("content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if self.silent:
                    await asyncio.sleep(30)
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def answer(body: bytes, status: str = "200 OK", *headers: str) -> bytes:
    head = "\r\n".join(
        [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
        + [f"Content-Length: {len(body)}", "", ""]
    )
    return head.encode() + body


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    peer = Peer(answer=answer(b'{"sub": "u1"}'))
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    yield peer
    server.close()


async def test_sends_form_and_headers_and_reads_json(peer: Peer) -> None:
    client = IdpClient(5.0, 1024)
    try:
        got = await client.request(
            "POST", f"http://127.0.0.1:{peer.port}/token", {"Accept": "x"}, {"code": "a b"}
        )
    finally:
        await client.aclose()
    assert (got.status, got.json()) == (200, {"sub": "u1"})
    head = peer.heads[0]
    assert head.startswith("POST /token HTTP/1.1")
    assert "Content-Type: application/x-www-form-urlencoded" in head
    assert "Accept: x" in head and "User-Agent: Cognate/" in head


async def test_keeps_no_cookies_and_follows_no_redirects(peer: Peer) -> None:
    peer.answer = answer(
        b"{}", "302 Found", "Set-Cookie: upstream=alice; Path=/", "Location: http://evil.test/"
    )
    client = IdpClient(5.0, 1024)
    try:
        first = await client.request("GET", f"http://127.0.0.1:{peer.port}/userinfo")
        await client.request("GET", f"http://127.0.0.1:{peer.port}/userinfo")
    finally:
        await client.aclose()
    assert first.status == 302  # answered as is: the caller refuses it
    assert len(peer.heads) == 2  # nothing went to evil.test
    assert all("cookie" not in head.lower().replace("set-cookie", "") for head in peer.heads)


async def test_reads_at_most_one_byte_over_the_bound(peer: Peer) -> None:
    peer.answer = answer(b"x" * 100_000)
    client = IdpClient(5.0, 1000)
    try:
        got = await client.request("GET", f"http://127.0.0.1:{peer.port}/jwks")
    finally:
        await client.aclose()
    assert len(got.body) == 1001


async def test_silence_and_refusal_are_clear_errors(peer: Peer) -> None:
    peer.silent = True
    client = IdpClient(0.3, 1024)
    try:
        with pytest.raises(OutboundError, match="timed out"):
            await client.request("GET", f"http://127.0.0.1:{peer.port}/token")
        closed = IdpClient(0.3, 1024)
        with pytest.raises(OutboundError, match="connection failed"):
            await closed.request("GET", "http://127.0.0.1:9/token")
        await closed.aclose()
    finally:
        await client.aclose()


async def test_environment_proxy_is_used_unless_no_proxy_exempts_the_host(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{peer.port}")
    monkeypatch.setenv("NO_PROXY", "direct.test")
    client = IdpClient(5.0, 1024)
    try:
        assert client.proxy_for("http://direct.test/x") is None
        got = await client.request("GET", "http://idp.test/userinfo")
    finally:
        await client.aclose()
    assert got.json() == {"sub": "u1"}
    # The proxy got the absolute form of the IdP's URL.
    assert peer.heads[0].startswith("GET http://idp.test/userinfo HTTP/1.1")
