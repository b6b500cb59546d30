"""Cognito's hosted-UI paths, for apps configured against a Cognito domain: `/oauth2/userInfo`,
`/logout?client_id=&logout_uri=` (and its `redirect_uri` form), `/login` and `/signup` with an
authorization request, `identity_provider=COGNITO`, and `/oauth2/idpresponse` as an upstream
IdP's callback — each on a real gateway, with the refusals that keep them from being an open
redirector or a way around `/oauth2/authorize`'s rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import ConfigError
from tests.federation.fake_op import FakeOP
from tests.helpers import (
    PASSWORD,
    AppServer,
    Browser,
    GatewayServer,
    RedisServer,
    code_flow_params,
    form_fields,
    free_port,
    location_query,
    make_settings,
    pkce_pair,
    redeem,
)
from tests.mail import Mailbox, code_in, smtp_settings

CB = "https://app.example.com/cb"
BYE = "https://app.example.com/bye"
SPA = "https://spa.example.com"
SPA_CB = "https://spa.example.com/cb"
EVIL = "https://evil.example"


def fake_connector(connector_id: str, issuer: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": connector_id,
        "type": "oidc",
        "name": f"Fake IdP ({connector_id})",
        "issuer": issuer,
        "client_id": "fake-client",
        "client_secret": "fake-secret-0123456789",
        "token_endpoint_auth_method": "client_secret_post",
        **extra,
    }


@pytest.fixture(scope="module")
def fake_op() -> Iterator[FakeOP]:
    op = FakeOP()
    op.server.start()
    yield op
    op.server.stop()


@pytest.fixture(scope="module")
def pool(
    redis_server: RedisServer, mailbox: tuple[Mailbox, int], fake_op: FakeOP
) -> Iterator[GatewayServer]:
    """A gateway with self sign-up, the local directory and three connectors to the fake IdP:
    one with Cognito's callback, one with oauth2-proxy's, one with its own (and a home realm)."""
    server = GatewayServer(
        make_settings(
            free_port(),
            redis_server.url,
            user_pool={"self_sign_up": True, "allowed_email_domains": ["example.com"]},
            email=smtp_settings(mailbox[1]),
            connectors=[
                {"id": "local", "type": "local"},
                fake_connector("fake", fake_op.issuer, domains=["fake.example"]),
                fake_connector("fake-cognito", fake_op.issuer, cognito_callback=True),
                fake_connector("fake-o2p", fake_op.issuer, oauth2_proxy_callback=True),
            ],
        )
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def browser(pool: GatewayServer) -> AsyncIterator[Browser]:
    b = Browser(pool.url)
    yield b
    await b.aclose()


@pytest.fixture
async def user(pool: GatewayServer) -> str:
    email = f"cognito-{free_port()}@example.com"
    await pool.add_user(email, name="Cognito User", email_verified=True)
    return email


def is_error_page(response: httpx.Response, status: int = 400) -> bool:
    """A friendly HTML page — never a redirect anywhere."""
    return (
        response.status_code == status
        and "location" not in response.headers
        and response.headers["content-type"].startswith("text/html")
    )


async def signed_in(browser: Browser, email: str, **params: str) -> None:
    await browser.login_for_code(email, **params)


async def session_alive(pool: GatewayServer, cookie: str) -> bool:
    """Is the session behind this cookie value still in force on the server (not merely
    forgotten by one browser)?"""
    return await pool.call(lambda s: s.sessions.load(cookie)) is not None


def session_cookie(browser: Browser) -> str:
    value = browser.http.cookies.get("cognate_session")
    assert value
    return value


async def is_signed_in(browser: Browser) -> bool:
    """prompt=none answers with a code only for a browser that is signed in (asked for the
    SPA, so the session's list of applications signed in to stays as the test made it)."""
    silent = await browser.authorize(
        **code_flow_params(client_id="spa", redirect_uri=SPA_CB, prompt="none")
    )
    assert silent.status_code == 303
    return "code" in location_query(silent)


# ---- /oauth2/userInfo -------------------------------------------------------------------


async def spa_access_token(browser: Browser, email: str) -> str:
    code, verifier, _ = await browser.login_for_code(email, client_id="spa", redirect_uri=SPA_CB)
    answer = await redeem(
        browser.http, code, verifier, auth=None, client_id="spa", redirect_uri=SPA_CB
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def test_userInfo_is_the_userinfo_endpoint(browser: Browser, user: str) -> None:
    token = await spa_access_token(browser, user)
    bearer = {"Authorization": f"Bearer {token}"}
    ours = await browser.http.get("/oauth2/userinfo", headers=bearer)
    cognitos = await browser.http.get("/oauth2/userInfo", headers={**bearer, "Origin": SPA})
    assert cognitos.status_code == 200 and cognitos.json() == ours.json()
    assert cognitos.json()["email"] == user
    assert cognitos.headers["cache-control"] == "no-store"
    # CORS as at /oauth2/userinfo: the token's client's origin, never another.
    assert cognitos.headers["access-control-allow-origin"] == SPA
    elsewhere = await browser.http.get("/oauth2/userInfo", headers={**bearer, "Origin": EVIL})
    assert "access-control-allow-origin" not in elsewhere.headers
    preflight = await browser.http.options(
        "/oauth2/userInfo",
        headers={"Origin": SPA, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == SPA
    # Errors as there: a bad or revoked token is 401 with a Bearer challenge, as OAuth JSON.
    http = httpx.AsyncClient(base_url=browser.base_url)  # no cookies: the token alone
    try:
        for header in ({"Authorization": "Bearer garbage"}, {}):
            refused = await http.get("/oauth2/userInfo", headers=header)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "error" in refused.json()
        revoked = await http.post("/oauth2/revoke", data={"client_id": "spa", "token": token})
        assert revoked.status_code == 200
        gone = await http.get("/oauth2/userInfo", headers=bearer)
        assert gone.status_code == 401 and gone.json()["error"] == "invalid_token"
        wrong_method = await http.delete("/oauth2/userInfo", headers=bearer)
        assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    finally:
        await http.aclose()


# ---- /login and /signup with an authorization request -----------------------------------


def cognito_query(**changes: str | None) -> str:
    """Cognito's /login query as amazon-cognito-auth-js and Amplify build it (plus PKCE)."""
    return urlencode(code_flow_params(**{"scope": "openid email profile", **changes}))


async def test_login_with_an_authorization_request_signs_in_to_that_app(
    browser: Browser, user: str
) -> None:
    verifier, challenge = pkce_pair()
    first = await browser.http.get(
        "/login?" + cognito_query(state="st-1", code_challenge=challenge)
    )
    assert first.status_code == 303 and first.headers["location"].startswith("/login?flow=")
    page = await browser.http.get(first.headers["location"])
    assert page.status_code == 200 and 'name="password"' in page.text
    done = await browser.http.post(
        "/login", data={**form_fields(page.text), "email": user, "password": PASSWORD}
    )
    assert done.status_code == 303 and done.headers["location"].startswith(CB + "?")
    back = location_query(done)
    assert back["state"] == "st-1" and back["iss"] == browser.base_url
    tokens = await redeem(browser.http, back["code"], verifier)
    assert tokens.status_code == 200 and "id_token" in tokens.json()
    # Signed in already: the code at once, as at /oauth2/authorize.
    again = await browser.http.get("/login?" + cognito_query(state="st-2"))
    assert again.status_code == 303 and location_query(again)["state"] == "st-2"
    assert "code" in location_query(again)


async def test_login_keeps_every_rule_of_the_authorization_endpoint(browser: Browser) -> None:
    # Before the client and its redirect URI are trusted: an error page, never a redirect.
    unknown = await browser.http.get("/login?" + cognito_query(client_id="nobody"))
    assert is_error_page(unknown) and "not registered" in unknown.text
    for uri in (EVIL + "/cb", CB + "/", CB + "?x=1", SPA_CB):
        elsewhere = await browser.http.get("/login?" + cognito_query(redirect_uri=uri))
        assert is_error_page(elsewhere), uri
    # After: the error goes back to the application, as the authorization endpoint sends it.
    for changes, error in (
        ({"code_challenge": None}, "invalid_request"),  # PKCE is required
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"identity_provider": "nope"}, "invalid_request"),
    ):
        refused = await browser.http.get("/login?" + cognito_query(**changes))
        assert refused.status_code == 303, changes
        assert refused.headers["location"].startswith(CB + "?"), changes
        assert location_query(refused)["error"] == error, changes
    repeated = await browser.http.get("/login?" + cognito_query() + "&scope=openid")
    assert location_query(repeated)["error"] == "invalid_request"


async def test_login_without_an_application_still_ends_on_the_account_page(
    browser: Browser, user: str
) -> None:
    first = await browser.http.get("/login")
    page = await browser.http.get(first.headers["location"])
    done = await browser.http.post(
        "/login", data={**form_fields(page.text), "email": user, "password": PASSWORD}
    )
    assert done.status_code == 303 and done.headers["location"] == f"{browser.base_url}/"


async def test_signup_with_an_authorization_request_signs_up_to_that_app(
    pool: GatewayServer, browser: Browser, mailbox: tuple[Mailbox, int]
) -> None:
    email = f"new-{free_port()}@example.com"
    first = await browser.http.get("/signup?" + cognito_query(state="st-up"))
    assert first.status_code == 303 and first.headers["location"].startswith("/signup?flow=")
    page = await browser.http.get(first.headers["location"])
    assert page.status_code == 200
    created = await browser.http.post(
        "/signup",
        data={**form_fields(page.text), "email": email, "password": "a fine long password"},
    )
    assert created.status_code == 303, created.text
    message = await mailbox[0].next_for(email)
    verify = form_fields((await browser.http.get(created.headers["location"])).text)
    done = await browser.http.post("/signup/verify", data={**verify, "code": code_in(message)})
    assert done.status_code == 303 and done.headers["location"].startswith(CB + "?")
    assert location_query(done)["state"] == "st-up" and "code" in location_query(done)


async def test_signup_keeps_the_rules_too(browser: Browser) -> None:
    unknown = await browser.http.get("/signup?" + cognito_query(client_id="nobody"))
    assert is_error_page(unknown)
    elsewhere = await browser.http.get("/signup?" + cognito_query(redirect_uri=EVIL + "/cb"))
    assert is_error_page(elsewhere)
    no_pkce = await browser.http.get("/signup?" + cognito_query(code_challenge=None))
    assert location_query(no_pkce)["error"] == "invalid_request"


# ---- identity_provider=COGNITO ----------------------------------------------------------


async def test_identity_provider_cognito_is_the_sign_in_form(
    browser: Browser, fake_op: FakeOP
) -> None:
    # An address of a home-realm domain goes to its IdP unless the app asks for the form.
    realm = await browser.authorize(**code_flow_params(login_hint="someone@fake.example"))
    assert realm.headers["location"].startswith(fake_op.issuer)
    for entry in ("/oauth2/authorize?", "/login?"):
        form = await browser.http.get(
            entry
            + urlencode(
                code_flow_params(login_hint="someone@fake.example", identity_provider="COGNITO")
            )
        )
        assert form.status_code == 303, entry
        assert form.headers["location"].startswith("/login?flow="), entry
        page = await browser.http.get(form.headers["location"])
        assert 'name="password"' in page.text
    # Cognate's own connector ids keep working (here, from Cognito's /login too).
    direct = await browser.http.get("/login?" + cognito_query(identity_provider="fake"))
    assert direct.headers["location"].startswith(fake_op.issuer)
    # The value is Cognito's, exactly: no connector is called "cognito".
    lower = await browser.authorize(**code_flow_params(identity_provider="cognito"))
    assert location_query(lower)["error"] == "invalid_request"


async def test_identity_provider_cognito_needs_a_user_directory(
    redis_server: RedisServer, fake_op: FakeOP
) -> None:
    server = GatewayServer(
        make_settings(
            free_port(), redis_server.url, connectors=[fake_connector("fake", fake_op.issuer)]
        )
    ).start()
    browser = Browser(server.url)
    try:
        refused = await browser.authorize(**code_flow_params(identity_provider="COGNITO"))
        assert refused.status_code == 303
        assert location_query(refused)["error"] == "invalid_request"
    finally:
        await browser.aclose()
        server.stop()


# ---- /oauth2/idpresponse ----------------------------------------------------------------


async def to_idp_and_back(browser: Browser, connector: str) -> tuple[str, str]:
    """Press the connector's button; the fake IdP approves. Returns (redirect_uri the IdP was
    given, the callback it sends the browser to, relative to the gateway)."""
    first = await browser.authorize(**code_flow_params())
    fields = form_fields((await browser.http.get(first.headers["location"])).text)
    started = await browser.http.post(
        f"/login/{connector}/start", data={"flow": fields["flow"], "_csrf": fields["_csrf"]}
    )
    assert started.status_code == 303, started.text
    redirect_uri = parse_qs(urlsplit(started.headers["location"]).query)["redirect_uri"][0]
    async with httpx.AsyncClient() as idp_browser:
        back = await idp_browser.get(started.headers["location"])
    return redirect_uri, back.headers["location"].removeprefix(browser.base_url)


async def test_idpresponse_is_the_callback_of_cognito_callback_connectors(
    browser: Browser,
) -> None:
    redirect_uri, callback = await to_idp_and_back(browser, "fake-cognito")
    assert redirect_uri == f"{browser.base_url}/oauth2/idpresponse"
    assert callback.startswith("/oauth2/idpresponse?")
    done = await browser.http.get(callback)
    assert done.status_code == 303 and done.headers["location"].startswith(CB + "?")
    assert "code" in location_query(done)


@pytest.mark.parametrize(
    ("connector", "path"),
    [
        ("fake", "/oauth2/idpresponse"),  # its callback is /login/fake/callback
        ("fake-o2p", "/oauth2/idpresponse"),  # its callback is /oauth2/callback
        ("fake-cognito", "/oauth2/callback"),  # and Cognito's answers are not oauth2-proxy's
    ],
)
async def test_an_answer_counts_only_at_its_connectors_callback(
    browser: Browser, connector: str, path: str
) -> None:
    _, callback = await to_idp_and_back(browser, connector)
    query = urlsplit(callback).query
    refused = await browser.http.get(f"{path}?{query}")
    assert is_error_page(refused)
    assert "does not belong to this sign-in" in refused.text


def test_a_connector_has_one_shared_callback() -> None:
    with pytest.raises(ConfigError, match="choose one"):
        make_settings(
            free_port(),
            "redis://127.0.0.1:1/0",
            connectors=[
                fake_connector(
                    "both", "https://idp.example", oauth2_proxy_callback=True, cognito_callback=True
                )
            ],
        )


# ---- /logout ----------------------------------------------------------------------------


async def test_logout_signs_out_and_goes_to_the_registered_logout_uri(
    pool: GatewayServer, browser: Browser, user: str
) -> None:
    await signed_in(browser, user)
    cookie = session_cookie(browser)
    out = await browser.http.get("/logout?" + urlencode({"client_id": "web", "logout_uri": BYE}))
    assert out.status_code == 303 and out.headers["location"] == BYE
    assert not await is_signed_in(browser)
    assert not await session_alive(pool, cookie)  # ended on the server, not just forgotten


@pytest.mark.parametrize(
    "query",
    [
        {"client_id": "web", "logout_uri": EVIL},
        {"client_id": "web", "logout_uri": BYE + "/"},  # exact match only
        {"client_id": "web", "logout_uri": BYE + "?next=https://evil.example"},
        {"client_id": "spa", "logout_uri": BYE},  # another client's address
        {"client_id": "nobody", "logout_uri": BYE},
        {"client_id": "web"},  # neither logout_uri nor redirect_uri
        {"client_id": "spa"},  # (even for a client with a single redirect URI)
        {"client_id": "web", "redirect_uri": EVIL + "/cb", "response_type": "code"},
    ],
)
async def test_logout_refusals_are_pages_and_keep_the_session(
    browser: Browser, user: str, query: dict[str, str]
) -> None:
    await signed_in(browser, user)
    refused = await browser.http.get("/logout?" + urlencode(query))
    assert is_error_page(refused)
    assert await is_signed_in(browser)


async def test_logout_refuses_a_repeated_parameter(browser: Browser, user: str) -> None:
    # Which of two values counts differs between parsers (a proxy's rule may read the first,
    # Starlette reads the last): neither is followed.
    await signed_in(browser, user)
    twice = await browser.http.get(
        "/logout?" + urlencode([("client_id", "web"), ("logout_uri", EVIL), ("logout_uri", BYE)])
    )
    assert is_error_page(twice) and await is_signed_in(browser)


async def test_logout_with_redirect_uri_signs_out_then_in_again(
    pool: GatewayServer, browser: Browser, user: str
) -> None:
    await signed_in(browser, user)
    cookie = session_cookie(browser)
    verifier, challenge = pkce_pair()
    out = await browser.http.get(
        "/logout?" + cognito_query(state="st-again", code_challenge=challenge)
    )
    assert out.status_code == 303 and out.headers["location"].startswith("/login?")
    assert not await session_alive(pool, cookie)
    # Signed out: the sign-in form, not a code for the old session.
    first = await browser.http.get(out.headers["location"])
    assert first.status_code == 303 and first.headers["location"].startswith("/login?flow=")
    done = await browser.sign_in(first, user)
    assert location_query(done)["state"] == "st-again"
    assert (await redeem(browser.http, location_query(done)["code"], verifier)).status_code == 200


async def test_logout_for_an_app_the_session_never_used_asks_first(
    pool: GatewayServer, browser: Browser, user: str
) -> None:
    # Signed in to the SPA only: a page elsewhere naming `web` may not sign the user out
    # silently; the confirmation posts the same request.
    await signed_in(browser, user, client_id="spa", redirect_uri=SPA_CB)
    cookie = session_cookie(browser)
    asked = await browser.http.get("/logout?" + urlencode({"client_id": "web", "logout_uri": BYE}))
    assert asked.status_code == 200 and "Sign out?" in asked.text
    assert await is_signed_in(browser)
    fields = form_fields(asked.text)
    assert fields["client_id"] == "web" and fields["logout_uri"] == BYE
    forged = await browser.http.post("/logout", data={**fields, "_csrf": "forged"})
    assert forged.status_code == 403 and await is_signed_in(browser)
    confirmed = await browser.http.post("/logout", data=fields)
    assert confirmed.status_code == 303 and confirmed.headers["location"] == BYE
    assert not await is_signed_in(browser)
    assert not await session_alive(pool, cookie)


async def test_logout_without_client_id_is_still_the_ops_logout(browser: Browser) -> None:
    for method in ("GET", "POST"):
        answer = await browser.http.request(method, "/logout")
        assert answer.status_code == 303 and answer.headers["location"] == "/oauth2/logout"


# ---- sidecar mode -----------------------------------------------------------------------


async def echo(request: Request) -> Response:
    return JSONResponse({"app": request.url.path})


@pytest.fixture(scope="module")
def sidecar(redis_server: RedisServer) -> Iterator[GatewayServer]:
    app = AppServer(
        Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "OPTIONS"])])
    ).start()
    gateway = GatewayServer(
        make_settings(
            free_port(),
            redis_server.url,
            user_pool={"self_sign_up": True},
            sidecar={"upstream": app.url},
        )
    ).start()
    yield gateway
    gateway.stop()
    app.stop()


async def test_sidecar_keeps_the_cognito_paths(sidecar: GatewayServer) -> None:
    from gateway.proxy.sidecar import RESERVED

    paths = {
        "/oauth2/userInfo": 401,
        "/oauth2/idpresponse?state=x&code=y": 400,
        "/logout?" + urlencode({"client_id": "web", "logout_uri": BYE}): 303,
        "/login?" + cognito_query(): 303,
        "/signup?" + cognito_query(): 303,
    }
    async with httpx.AsyncClient(base_url=sidecar.url) as http:
        for path, status in paths.items():
            answer = await http.get(path, headers={"Accept": "text/html"})
            assert answer.status_code == status, path  # the gateway's answer, not the app's
            assert '{"app"' not in answer.text, path
            bare = urlsplit(path).path
            assert any(bare == p.rstrip("/") or bare.startswith(p) for p in RESERVED), path
