"""The `oidc` connector against real upstream OPs over HTTP: a well-behaved Cognate and a
scriptable fake (SECURITY-TESTS B16-B21)."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.federation.conftest import ENTRA_TENANT, Federation, start_upstream_login
from tests.federation.fake_op import Behaviour
from tests.helpers import (
    PASSWORD,
    WEB,
    Browser,
    code_flow_params,
    form_fields,
    location_query,
    redeem,
)


async def through_fake(
    federation: Federation, browser: Browser, connector: str = "fake"
) -> httpx.Response:
    """Sign in at the RP with the fake IdP; returns the RP's answer to the callback (the PKCE
    verifier for the code it carries is left on `browser.verifier`)."""
    from tests.helpers import pkce_pair

    verifier, challenge = pkce_pair()
    browser.verifier = verifier  # type: ignore[attr-defined]
    to_idp = await start_upstream_login(browser, connector, code_challenge=challenge)
    assert to_idp.headers["location"].startswith(federation.fake.issuer + "/authorize")
    async with httpx.AsyncClient() as idp_browser:
        back = await idp_browser.get(to_idp.headers["location"])
    assert back.status_code == 302
    callback = back.headers["location"]
    return await browser.http.get(callback.removeprefix(browser.base_url))


async def tokens_at_rp(
    federation: Federation, browser: Browser, done: httpx.Response
) -> dict[str, str]:
    assert done.status_code == 303, done.text
    query = location_query(done)
    verifier = browser.verifier  # type: ignore[attr-defined]
    response = await redeem(browser.http, query["code"], verifier)
    return dict(response.json())


@pytest.fixture
async def browser(federation: Federation) -> Browser:
    b = Browser(federation.rp.url)
    yield b  # type: ignore[misc]
    await b.aclose()


@pytest.fixture(autouse=True)
def good_manners(federation: Federation) -> None:
    federation.fake.reset()


async def test_sign_in_through_an_upstream_cognate(federation: Federation) -> None:
    email = f"up-{secrets.token_hex(4)}@example.com"
    await federation.upstream.add_user(email, email_verified=True)
    rp = Browser(federation.rp.url)
    idp = Browser(federation.upstream.url)
    try:
        from tests.helpers import pkce_pair

        verifier, challenge = pkce_pair()
        to_idp = await start_upstream_login(
            rp, "upstream", code_challenge=challenge, scope="openid email profile"
        )
        location = to_idp.headers["location"]
        assert location.startswith(federation.upstream.url + "/oauth2/authorize?")
        # The person signs in at the upstream IdP's own hosted page.
        login = await idp.http.get(location.removeprefix(federation.upstream.url))
        page = await idp.http.get(login.headers["location"])
        signed_in = await idp.http.post(
            "/login", data={**form_fields(page.text), "email": email, "password": PASSWORD}
        )
        callback = signed_in.headers["location"]
        assert callback.startswith(f"{federation.rp.url}/login/upstream/callback?")
        done = await rp.http.get(callback.removeprefix(federation.rp.url))
        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith("https://app.example.com/cb?code=")
        code = location_query(done)["code"]
        tokens = (await redeem(rp.http, code, verifier)).json()
        keys = KeySet.import_key_set((await rp.http.get("/.well-known/jwks.json")).json())
        claims = jwt.decode(tokens["id_token"], keys).claims
        assert claims["iss"] == federation.rp.url and claims["email"] == email
        assert claims["amr"] == ["fed"] and claims["sub"].startswith("us-east-1:")
    finally:
        await rp.aclose()
        await idp.aclose()


async def test_fake_idp_happy_path_merges_userinfo(
    federation: Federation, browser: Browser
) -> None:
    done = await through_fake(federation, browser)
    assert done.status_code == 303, done.text
    assert "code=" in done.headers["location"]
    home = await browser.http.get("/")
    assert "fed@example.com" in home.text


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Behaviour(claims={"iss": "https://attacker.example"}), "issued by someone else"),
        (Behaviour(claims={"aud": "another-client"}), "another application"),
        (
            Behaviour(claims={"aud": ["fake-client", "other"], "azp": "other"}),
            "another authorized party",
        ),
        (Behaviour(drop=("sub",)), "no subject"),
        (Behaviour(drop=("iat",)), "no valid issue time"),
        (Behaviour(claims={"exp": 1_000_000}), "has expired"),
        (Behaviour(claims={"nonce": "not-the-nonce"}), "nonce"),
        (Behaviour(drop=("nonce",)), "nonce"),
        (Behaviour(signing="bad-sig"), "signature"),
        (Behaviour(signing="none"), "algorithm"),
        (Behaviour(signing="hs256-public"), "algorithm"),
        (Behaviour(signing="foreign-key"), "signature"),
        (Behaviour(signing="embedded-jwk"), "signature"),
        (Behaviour(userinfo_sub="someone-else"), "another user"),
    ],
)
async def test_bad_id_tokens_are_refused(
    federation: Federation, browser: Browser, behaviour: Behaviour, message: str
) -> None:
    federation.fake.behaviour = behaviour
    done = await through_fake(federation, browser)
    assert done.status_code == 400
    assert message in done.text
    assert "location" not in done.headers
    assert "cognate_session" not in done.headers.get("set-cookie", "")


@pytest.mark.parametrize("response_iss", ["other", "missing"])
async def test_mix_up_is_refused_before_the_code_is_spent(
    federation: Federation, browser: Browser, response_iss: str
) -> None:
    federation.fake.behaviour = Behaviour(response_iss=response_iss)
    done = await through_fake(federation, browser)
    assert done.status_code == 400
    assert federation.fake.token_requests == 0


async def test_state_must_belong_to_this_browser_and_flow(
    federation: Federation, browser: Browser
) -> None:
    to_idp = await start_upstream_login(browser, "fake")
    async with httpx.AsyncClient() as idp_browser:
        back = await idp_browser.get(to_idp.headers["location"])
    callback = back.headers["location"].removeprefix(browser.base_url)
    query = parse_qs(urlsplit(callback).query)
    path = urlsplit(callback).path
    # missing state, forged state (right flow, wrong secret), foreign browser
    missing = await browser.http.get(f"{path}?code={query['code'][0]}")
    assert missing.status_code == 400
    forged_state = query["state"][0].split(".")[0] + ".forged"
    forged = await browser.http.get(f"{path}?code={query['code'][0]}&state={forged_state}")
    assert forged.status_code == 400
    stranger = Browser(browser.base_url)
    try:
        foreign = await stranger.http.get(callback)
        assert foreign.status_code == 400
        assert "cognate_session" not in stranger.http.cookies
    finally:
        await stranger.aclose()
    # The rightful browser can still finish (the failures above consumed nothing)...
    ok = await browser.http.get(callback)
    assert ok.status_code == 303
    # ...once: replaying the callback is refused.
    replay = await browser.http.get(callback)
    assert replay.status_code == 400


async def test_same_email_from_two_idps_is_two_identities(
    federation: Federation, browser: Browser
) -> None:
    email = f"twice-{secrets.token_hex(4)}@example.com"
    await federation.rp.add_user(email, email_verified=True)
    local_code, _, _ = await browser.login_for_code(email)
    assert local_code
    local_id = await federation.rp.call(
        lambda s: s.identities.find("local", "")
    )  # placeholder to keep the call shape; replaced below
    del local_id
    federation.fake.behaviour = Behaviour(email=email, subject=f"s-{secrets.token_hex(3)}")
    second = Browser(federation.rp.url)
    try:
        done = await through_fake(federation, second)
        assert done.status_code == 303
        sessions = []
        for b in (browser, second):
            sid = b.http.cookies["cognate_session"]
            sessions.append(await federation.rp.call(lambda s, c=sid: s.sessions.load(c)))
        assert sessions[0].profile["email"] == sessions[1].profile["email"] == email
        assert sessions[0].identity_id != sessions[1].identity_id
    finally:
        await second.aclose()


async def test_unverified_upstream_email_is_marked_unverified(
    federation: Federation, browser: Browser
) -> None:
    federation.fake.behaviour = Behaviour(email_verified="yes", subject="unverified-1")
    done = await through_fake(federation, browser)
    assert done.status_code == 303
    session = await federation.rp.call(
        lambda s: s.sessions.load(browser.http.cookies["cognate_session"])
    )
    assert session.profile["email_verified"] is False


async def test_identity_provider_parameter_skips_the_chooser(
    federation: Federation, browser: Browser
) -> None:
    from tests.helpers import code_flow_params

    direct = await browser.authorize(**code_flow_params(identity_provider="fake"))
    assert direct.status_code == 303
    assert direct.headers["location"].startswith(federation.fake.issuer + "/authorize?")
    unknown = await browser.authorize(**code_flow_params(identity_provider="nope"))
    assert location_query(unknown)["error"] == "invalid_request"


async def test_unreachable_idp_fails_alone(federation: Federation, browser: Browser) -> None:
    first = await browser.authorize(**__import__("tests.helpers").helpers.code_flow_params())
    page = await browser.http.get(first.headers["location"])
    assert 'data-connector="broken"' in page.text and 'name="password"' in page.text
    fields = form_fields(page.text)
    broken = await browser.http.post(
        "/login/broken/start", data={"flow": fields["flow"], "_csrf": fields["_csrf"]}
    )
    assert broken.status_code == 502
    assert "Broken IdP is unreachable" in broken.text
    # The other connectors keep working from the same page.
    fine = await browser.http.post(
        "/login/fake/start", data={"flow": fields["flow"], "_csrf": fields["_csrf"]}
    )
    assert fine.status_code == 303


async def test_start_needs_csrf(federation: Federation, browser: Browser) -> None:
    first = await browser.authorize(**__import__("tests.helpers").helpers.code_flow_params())
    page = await browser.http.get(first.headers["location"])
    fields = form_fields(page.text)
    refused = await browser.http.post("/login/fake/start", data={"flow": fields["flow"]})
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("slow", "unreachable (timed out)"),
        ("500", "answered HTTP 500"),
        ("html", "not JSON"),
        ("huge", "oversized"),
    ],
)
async def test_misbehaving_token_endpoint_is_a_clear_error(
    federation: Federation, browser: Browser, answer: str, message: str
) -> None:
    federation.fake.behaviour = Behaviour(token_answer=answer)
    done = await through_fake(federation, browser)
    # The IdP's fault, not the user's: 503 when it cannot be reached, 502 for a broken answer.
    assert done.status_code == (503 if answer == "slow" else 502), done.text
    assert message in done.text and "Sign-in unavailable" in done.text
    assert "Try again in a few moments" in done.text
    assert "Traceback" not in done.text and "client_secret" not in done.text


async def test_bad_jwks_answer_keeps_the_cached_keys(
    federation: Federation, browser: Browser
) -> None:
    first = await through_fake(federation, browser)  # the keys are fetched and cached
    assert first.status_code == 303
    connector = federation.rp.services.connectors["fake"]
    connector._keys_at = 0.0  # type: ignore[attr-defined]  # the refetch cooldown has passed
    for broken in ("500", "garbage"):
        federation.fake.behaviour = Behaviour(jwks_answer=broken, signing="foreign-key")
        other = Browser(federation.rp.url)
        try:
            refused = await through_fake(federation, other)  # unknown key → one refetch, fails
            assert refused.status_code == 400
        finally:
            await other.aclose()
        federation.fake.behaviour = Behaviour(jwks_answer=broken)
        third = Browser(federation.rp.url)
        try:
            fine = await through_fake(federation, third)  # the cached keys still work
            assert fine.status_code == 303, fine.text
        finally:
            await third.aclose()


async def test_unknown_kids_refetch_at_most_once_per_cooldown(
    federation: Federation,
) -> None:
    connector = federation.rp.services.connectors["fake"]
    connector._keys_at = 0.0  # type: ignore[attr-defined]
    federation.fake.reset()
    federation.fake.behaviour = Behaviour(signing="foreign-key")
    for _ in range(5):
        b = Browser(federation.rp.url)
        try:
            assert (await through_fake(federation, b)).status_code == 400
        finally:
            await b.aclose()
    assert federation.fake.jwks_requests <= 1


@pytest.mark.parametrize(
    ("behaviour", "accepted"),
    [
        (Behaviour(tenant=ENTRA_TENANT), True),
        (Behaviour(tenant="11111111-2222-3333-4444-555555555555"), False),  # not allowed
        (
            Behaviour(
                tenant=ENTRA_TENANT,  # tid says one tenant, iss another
                claims={"iss": "http://127.0.0.1/11111111-2222-3333-4444-555555555555/v2.0"},
            ),
            False,
        ),
        (Behaviour(), False),  # no tid at all
    ],
)
async def test_entra_multi_tenant_issuer_rules(
    federation: Federation, browser: Browser, behaviour: Behaviour, accepted: bool
) -> None:
    # Entra's v2 endpoints send no RFC 9207 iss with the authorization response.
    behaviour.response_iss = "missing"
    federation.fake.behaviour = behaviour
    done = await through_fake(federation, browser, "entra")
    if accepted:
        assert done.status_code == 303, done.text
    else:
        assert done.status_code == 400 and "issued by someone else" in done.text


async def test_sign_in_with_apple(federation: Federation, browser: Browser) -> None:
    # Apple: a client-secret JWT signed with the team's key (the fake rejects anything else),
    # response_mode=form_post (a cross-site POST back), and the name only in a one-time `user`.
    federation.fake.behaviour = Behaviour(
        subject="001234.apple-user",
        email_verified="true",  # Apple sends strings
        apple_user='{"name": {"firstName": "Ada", "lastName": "Lovelace"}, "email": "evil@x"}',
    )
    tokens_before = federation.fake.token_requests
    to_idp = await start_upstream_login(browser, "apple")
    query = parse_qs(urlsplit(to_idp.headers["location"]).query)
    assert query["response_mode"] == ["form_post"]
    async with httpx.AsyncClient() as idp_browser:
        page = await idp_browser.get(to_idp.headers["location"])
    answer = form_fields(page.text)
    # The POST arrives cross-site, without our SameSite=Lax cookies: a same-site re-post.
    async with httpx.AsyncClient(base_url=federation.rp.url) as cross_site:
        repost = await cross_site.post("/login/apple/callback", data=answer)
    assert repost.status_code == 200, repost.text
    done = await browser.http.post("/login/apple/callback", data=form_fields(repost.text))
    assert done.status_code == 303, done.text
    assert federation.fake.token_requests == tokens_before + 1
    home = await browser.http.get("/")
    assert "fed@example.com" in home.text  # the e-mail of the ID token, never of `user`
    session = await federation.rp.call(
        lambda s: s.sessions.load(browser.http.cookies.get("cognate_session"))
    )
    assert session.profile["given_name"] == "Ada"
    assert session.profile["email_verified"] is True


async def test_apple_refuses_a_client_secret_from_another_key(
    federation: Federation, browser: Browser
) -> None:
    from joserfc.jwk import ECKey

    real = federation.fake.apple_key
    federation.fake.apple_key = ECKey.generate_key("P-256", private=True)
    try:
        to_idp = await start_upstream_login(browser, "apple")
        async with httpx.AsyncClient() as idp_browser:
            page = await idp_browser.get(to_idp.headers["location"])
        done = await browser.http.post("/login/apple/callback", data=form_fields(page.text))
    finally:
        federation.fake.apple_key = real
    assert done.status_code == 400
    assert "Apple answered HTTP 401" in done.text


async def test_home_realm_discovery(federation: Federation, browser: Browser) -> None:
    # A login_hint in a connector's domain goes straight to that IdP…
    hinted = await browser.authorize(**code_flow_params(login_hint="ada@fake.example"))
    assert hinted.status_code == 303
    assert hinted.headers["location"].startswith(federation.fake.issuer + "/authorize")
    # …and so does that e-mail typed on the sign-in page (any case, no password needed).
    first = await browser.authorize(**code_flow_params())
    page = await browser.http.get(first.headers["location"])
    assert "Work account?" in page.text
    fields = form_fields(page.text)
    typed = await browser.http.post(
        "/login", data={**fields, "connector": "local", "email": "Ada@FAKE.example"}
    )
    assert typed.status_code == 303
    assert typed.headers["location"].startswith(federation.fake.issuer + "/authorize")
    # Other domains still use the password form.
    other = await browser.http.post(
        "/login", data={**fields, "connector": "local", "email": "ada@elsewhere.example"}
    )
    assert other.status_code == 401, other.status_code
    assert 'name="password"' in other.text


async def test_upstream_tokens_refresh_with_ours(federation: Federation, browser: Browser) -> None:
    fake = federation.fake
    tokens = await tokens_at_rp(federation, browser, await through_fake(federation, browser))
    upstream_access = fake.issued_access_tokens[-1]
    # Kept encrypted at rest: no stored value holds the IdP's access token in the clear.
    scanned, found = await _stored_anywhere(federation, upstream_access)
    assert scanned > 5 and not found

    async def refresh(token: str) -> httpx.Response:
        return await browser.http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=WEB,
        )

    before = fake.refresh_requests
    first = await refresh(tokens["refresh_token"])
    assert first.status_code == 200, first.text
    assert fake.refresh_requests == before + 1  # the IdP was asked, and said yes
    # The IdP is down: a 503, and our refresh token is still good afterwards.
    fake.behaviour.refresh_answer = "500"
    down = await refresh(first.json()["refresh_token"])
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"
    fake.behaviour.refresh_answer = "good"
    second = await refresh(first.json()["refresh_token"])
    assert second.status_code == 200, second.text
    # The IdP revokes the user's sign-in: our grant ends with it.
    fake.behaviour.refresh_answer = "invalid_grant"
    refused = await refresh(second.json()["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    fake.behaviour.refresh_answer = "good"
    again = await refresh(second.json()["refresh_token"])
    assert again.status_code == 400  # the family is revoked for good


async def test_an_upstream_refresh_with_a_new_id_token_updates_the_claims(
    federation: Federation, browser: Browser
) -> None:
    # OIDC Core §12.2: a refresh may bring a new ID token; what the IdP now says about the
    # user (here: a changed e-mail) reaches our refreshed ID token and userinfo. A refreshed ID
    # token naming another user ends the grant.
    fake = federation.fake
    tokens = await tokens_at_rp(federation, browser, await through_fake(federation, browser))
    keys = KeySet.import_key_set((await browser.http.get("/.well-known/jwks.json")).json())

    async def refresh(token: str) -> httpx.Response:
        return await browser.http.post(
            "/oauth2/token",
            data={"grant_type": "refresh_token", "refresh_token": token},
            auth=WEB,
        )

    assert jwt.decode(tokens["id_token"], keys).claims["email"] == "fed@example.com"
    fake.behaviour.email = "renamed@example.com"
    fake.behaviour.refresh_answer = "id-token"
    fresh = await refresh(tokens["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    assert jwt.decode(fresh.json()["id_token"], keys).claims["email"] == "renamed@example.com"
    info = await browser.http.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"}
    )
    assert info.json()["email"] == "renamed@example.com"
    fake.behaviour.subject = "someone-else"
    other = await refresh(fresh.json()["refresh_token"])
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"


async def _stored_anywhere(federation: Federation, needle: str) -> tuple[int, bool]:
    """How many of the RP's string values were read, and whether any holds `needle`."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(federation.rp.settings.store.url)
    scanned = 0
    try:
        async for key in client.scan_iter(f"{federation.rp.settings.store.prefix}:*"):
            if await client.type(key) == b"string":
                scanned += 1
                if needle.encode() in (await client.get(key) or b""):
                    return scanned, True
    finally:
        await client.aclose()
    return scanned, False


async def test_the_oauth2_proxy_callback_url_works(
    federation: Federation, browser: Browser
) -> None:
    # A connector keeping an IdP registration made for oauth2-proxy: the IdP sends the browser
    # to /oauth2/callback, and the flow named by `state` says which connector answers.
    to_idp = await start_upstream_login(browser, "fake-o2p")
    query = parse_qs(urlsplit(to_idp.headers["location"]).query)
    assert query["redirect_uri"] == [f"{federation.rp.url}/oauth2/callback"]
    async with httpx.AsyncClient() as idp_browser:
        back = await idp_browser.get(to_idp.headers["location"])
    callback = back.headers["location"].removeprefix(federation.rp.url)
    assert callback.startswith("/oauth2/callback?")
    done = await browser.http.get(callback)
    assert done.status_code == 303 and "code=" in done.headers["location"]
    # A state whose flow went to a /login/{id}/callback connector is refused here.
    other = Browser(federation.rp.url)
    try:
        to_fake = await start_upstream_login(other, "fake")
        async with httpx.AsyncClient() as idp_browser:
            back = await idp_browser.get(to_fake.headers["location"])
        state = parse_qs(urlsplit(back.headers["location"]).query)["state"][0]
        refused = await other.http.get(f"/oauth2/callback?code=x&state={state}")
        assert refused.status_code == 400
    finally:
        await other.aclose()


async def test_pass_access_token_hands_the_idp_token_to_the_proxy(
    federation: Federation, redis_server: object
) -> None:
    from tests.helpers import GatewayServer, free_port, make_settings

    fake = federation.fake
    connector = {
        "id": "fake",
        "type": "oidc",
        "name": "Fake IdP",
        "issuer": fake.issuer,
        "client_id": "fake-client",
        "client_secret": "fake-secret-0123456789",
        "token_endpoint_auth_method": "client_secret_post",
    }
    for passing in (True, False):
        gateway = GatewayServer(
            make_settings(
                free_port(),
                federation.rp.settings.store.url,
                connectors=[{"id": "local", "type": "local"}, connector],
                forward_auth={"pass_access_token": passing},
            )
        ).start()
        browser = Browser(gateway.url)
        try:
            assert (await through_fake(federation, browser)).status_code == 303
            answer = await browser.http.get("/oauth2/auth")
            assert answer.status_code == 202
            header = answer.headers.get("x-auth-request-access-token")
            assert header == (fake.issued_access_tokens[-1] if passing else None)
        finally:
            await browser.aclose()
            gateway.stop()
