"""Verifying our own JWTs (gateway/tokens.py with the key ring of gateway/keys.py):
SECURITY-TESTS G53 (clock skew exactly at the configured leeway) and B17's rules applied to
our own tokens (each token type verifies only with its own algorithm; `none` and HS256 keyed
with a public key never). Clocks are passed in (`now=`), never slept through."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt

from gateway.errors import InvalidToken
from gateway.tokens import TokenService
from tests.helpers import GatewayServer

SUB = "us-east-1:00000000-0000-4000-8000-0000000000aa"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def id_claims(gateway: GatewayServer, now: int) -> dict[str, Any]:
    return {
        "iss": gateway.settings.issuer,
        "sub": SUB,
        "aud": "web",
        "azp": "web",
        "iat": now,
        "exp": now + 300,
        "auth_time": now,
    }


def access_claims(gateway: GatewayServer, now: int) -> dict[str, Any]:
    return {
        "iss": gateway.settings.issuer,
        "sub": SUB,
        "aud": "web",
        "client_id": "web",
        "scope": "openid",
        "jti": "j" * 32,
        "iat": now,
        "exp": now + 300,
    }


# -- G53: the leeway boundary ----------------------------------------------------------------


async def test_access_token_expiry_is_accepted_within_the_leeway_only(
    gateway: GatewayServer,
) -> None:
    leeway = gateway.settings.tokens.leeway
    token, parsed = gateway.services.tokens.access_token(
        sub=SUB, client_id="web", scope=frozenset({"openid"}), gid=None
    )
    verify = gateway.services.tokens.verify_access_token
    accepted = await gateway.call(lambda s: verify(token, now=parsed.exp + leeway))
    assert accepted.jti == parsed.jti
    with pytest.raises(InvalidToken, match="expired"):
        await gateway.call(lambda s: verify(token, now=parsed.exp + leeway + 1))


async def test_access_token_from_a_clock_ahead_is_accepted_within_the_leeway_only(
    gateway: GatewayServer,
) -> None:
    """Another replica's clock runs ahead: iat is in our future."""
    leeway = gateway.settings.tokens.leeway
    issued = int(time.time()) + 1000
    token, parsed = gateway.services.tokens.access_token(
        sub=SUB, client_id="web", scope=frozenset({"openid"}), gid=None, now=issued
    )
    verify = gateway.services.tokens.verify_access_token
    assert (await gateway.call(lambda s: verify(token, now=issued - leeway))).iat == issued
    with pytest.raises(InvalidToken, match="not valid yet"):
        await gateway.call(lambda s: verify(token, now=issued - leeway - 1))


async def test_id_token_expiry_is_accepted_within_the_leeway_only(gateway: GatewayServer) -> None:
    """The identity pools' check of our own ID tokens (`verify_own_jwt`)."""
    leeway = gateway.settings.tokens.leeway
    issued = int(time.time())
    token = gateway.services.tokens.id_token(
        sub=SUB,
        client_id="web",
        auth_time=issued,
        nonce=None,
        sid=None,
        access_token=None,
        amr=["pwd"],
        profile={},
        now=issued,
    )
    expires = issued + gateway.settings.tokens.id_token_ttl
    verify = gateway.services.tokens.verify_own_jwt
    assert (await gateway.call(lambda s: verify(token, now=expires + leeway)))["sub"] == SUB
    with pytest.raises(ValueError, match="expired"):
        await gateway.call(lambda s: verify(token, now=expires + leeway + 1))


# -- each token type verifies only with its own algorithm ----------------------------------------


def signed_with_our_key(gateway: GatewayServer, alg: str, typ: str, claims: dict[str, Any]) -> str:
    """Signed by one of the gateway's own keys, but with the algorithm of the other token
    type: only the algorithm allow-list tells it apart from a genuine token."""
    key = gateway.services.keys.current(alg)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": typ}, claims, key)


async def test_an_access_token_signed_with_the_id_token_algorithm_is_refused(
    gateway: GatewayServer,
) -> None:
    keys = gateway.settings.keys
    assert keys.access_token_alg != keys.id_token_alg  # ES256 vs RS256 by default
    token = signed_with_our_key(
        gateway, keys.id_token_alg, "at+jwt", access_claims(gateway, int(time.time()))
    )
    verify = gateway.services.tokens.verify_access_token
    with pytest.raises(InvalidToken, match="badly signed"):
        await gateway.call(lambda s: verify(token))


async def test_an_id_token_signed_with_the_access_token_algorithm_is_refused(
    gateway: GatewayServer,
) -> None:
    keys = gateway.settings.keys
    token = signed_with_our_key(
        gateway, keys.access_token_alg, "JWT", id_claims(gateway, int(time.time()))
    )
    tokens = gateway.services.tokens
    with pytest.raises(ValueError, match="badly signed"):
        await gateway.call(lambda s: tokens.verify_own_jwt(token))
    with pytest.raises(ValueError, match="not a valid ID token"):
        await gateway.call(lambda s: tokens.verify_id_token_hint(token))


# -- each signature is checked once (TokenService._checked) ------------------------------------


def minted(tokens: TokenService, client_id: str) -> str:
    """An ID token for `client_id`, signed by `tokens`."""
    return tokens.id_token(
        sub=SUB,
        client_id=client_id,
        auth_time=0,
        nonce=None,
        sid=None,
        access_token=None,
        amr=[],
        profile={},
    )


async def test_a_signature_is_checked_once_and_the_claims_on_every_use(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens, keys = gateway.services.tokens, gateway.services.keys
    checked: list[str] = []
    decode = keys.decode

    async def counting(token: str, algorithms: list[str]) -> jwt.Token:
        checked.append(token)
        return await decode(token, algorithms)

    monkeypatch.setattr(keys, "decode", counting)
    verify = tokens.verify_access_token
    # An ID token this process signed: known good from the start.
    id_token = minted(tokens, "web")
    assert (await gateway.call(lambda s: tokens.verify_own_jwt(id_token)))["sub"] == SUB
    assert checked == []
    # An access token is checked when it is first shown, then remembered.
    mine, _ = tokens.access_token(sub=SUB, client_id="web", scope=frozenset(), gid=None)
    for _ in range(2):
        assert (await gateway.call(lambda s: verify(mine))).sub == SUB
    assert checked == [mine]
    checked.clear()
    # Signed with the same key elsewhere (another replica): checked the first time only.
    now = int(time.time())
    alg = gateway.settings.keys.access_token_alg
    other = signed_with_our_key(gateway, alg, "at+jwt", access_claims(gateway, now))
    for _ in range(3):
        assert (await gateway.call(lambda s: verify(other))).jti == "j" * 32
    assert checked == [other]
    # Remembered, but the lifetime is still checked on every use...
    with pytest.raises(InvalidToken, match="expired"):
        await gateway.call(
            lambda s: verify(other, now=now + 300 + gateway.settings.tokens.leeway + 1)
        )
    # ...and the type and algorithm: an access token is never a login token.
    with pytest.raises(ValueError, match="badly signed"):
        await gateway.call(lambda s, t=other: tokens.verify_own_jwt(t))
    # A changed signature is another text: checked, and refused.
    head, body, signature = other.split(".")
    forged = f"{head}.{body}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    with pytest.raises(InvalidToken, match="badly signed"):
        await gateway.call(lambda s: verify(forged))


async def test_remembered_claims_are_what_a_verifier_reads(gateway: GatewayServer) -> None:
    """Claims remembered at signing come back as JSON would give them (a tuple is a list:
    the identity pool checks `amr` with isinstance(list))."""
    tokens = gateway.services.tokens
    token = tokens.id_token(
        sub=SUB,
        client_id="web",
        auth_time=int(time.time()),
        nonce=None,
        sid=None,
        access_token=None,
        amr=("pwd",),  # type: ignore[arg-type]
        profile={"groups": ("a", "b")},
    )
    claims = await gateway.call(lambda s: tokens.verify_own_jwt(token))
    assert claims["amr"] == ["pwd"] and claims["groups"] == ["a", "b"]
    claims["sub"] = "changed"  # the caller's copy, not the remembered one
    assert (await gateway.call(lambda s: tokens.verify_own_jwt(token)))["sub"] == SUB


# -- a client's own ID token algorithm (id_token_signed_response_alg) ---------------------------


async def test_a_client_may_have_es256_id_tokens_and_typ_still_tells_tokens_apart(
    gateway: GatewayServer,
) -> None:
    """One client asks for ES256 ID tokens: its tokens are ES256, the others' stay RS256, our
    ES256 ID tokens verify (here one this process did not sign: another replica's), and our
    other ES256 tokens (access tokens, forward-auth assertions) are still no ID tokens."""
    from tests.helpers import make_settings

    base = gateway.settings
    clients = [c.model_dump(exclude_none=True) for c in base.clients]
    clients[0]["id_token_signed_response_alg"] = "ES256"
    settings = make_settings(int(base.issuer.rsplit(":", 1)[1]), "memory://", clients=clients)
    assert settings.id_token_algs == ["RS256", "ES256"]
    tokens = TokenService(settings, gateway.services.keys)
    first, second = clients[0]["client_id"], clients[1]["client_id"]

    def header_alg(token: str) -> str:
        return str(json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["alg"])

    assert header_alg(minted(tokens, first)) == "ES256"
    assert header_alg(minted(tokens, second)) == "RS256"
    now = int(time.time())
    elsewhere = signed_with_our_key(gateway, "ES256", "JWT", id_claims(gateway, now))
    assert (await gateway.call(lambda s: tokens.verify_own_jwt(elsewhere)))["sub"] == SUB
    assert (await gateway.call(lambda s: tokens.verify_id_token_hint(elsewhere)))["sub"] == SUB
    access = signed_with_our_key(gateway, "ES256", "at+jwt", access_claims(gateway, now))
    assertion = tokens.identity_assertion(audience="https://app", sub=SUB, email=None, groups=[])
    for other in (access, assertion):
        with pytest.raises(ValueError, match="only an ID"):
            await gateway.call(lambda s, t=other: tokens.verify_own_jwt(t))
        with pytest.raises(ValueError, match="not an ID token"):
            await gateway.call(lambda s, t=other: tokens.verify_id_token_hint(t))
    # Without such a client, ES256 is no ID token algorithm at all (B17).
    assert gateway.settings.id_token_algs == ["RS256"]
    with pytest.raises(ValueError, match="badly signed"):
        await gateway.call(lambda s: gateway.services.tokens.verify_own_jwt(elsewhere))


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return segments({**header, "alg": "none"}, claims) + "."


def hs256_with_public_key(header: dict[str, Any], claims: dict[str, Any], pem: bytes) -> str:
    """The classic confusion: HMAC keyed with the bytes of the RSA public key."""
    head = segments({**header, "alg": "HS256"}, claims)
    return f"{head}.{b64(hmac.new(pem, head.encode(), hashlib.sha256).digest())}"


def public_pem(gateway: GatewayServer) -> bytes:
    key = gateway.services.keys.current("RS256")
    return bytes(
        key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


Forger = Callable[[dict[str, Any], dict[str, Any], bytes], str]
FORGERIES: dict[str, Forger] = {
    "alg none": lambda header, claims, pem: unsigned(header, claims),
    "HS256 with the public key": hs256_with_public_key,
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_none_and_hmac_confusion_are_refused_everywhere(
    gateway: GatewayServer, forgery: str
) -> None:
    now = int(time.time())
    kid = gateway.services.keys.current("RS256").kid
    pem = public_pem(gateway)
    tokens = gateway.services.tokens
    access = FORGERIES[forgery]({"kid": kid, "typ": "at+jwt"}, access_claims(gateway, now), pem)
    with pytest.raises(InvalidToken):
        await gateway.call(lambda s: tokens.verify_access_token(access))
    login = FORGERIES[forgery]({"kid": kid, "typ": "JWT"}, id_claims(gateway, now), pem)
    with pytest.raises(ValueError):
        await gateway.call(lambda s: tokens.verify_own_jwt(login))
    with pytest.raises(ValueError):
        await gateway.call(lambda s: tokens.verify_id_token_hint(login))
