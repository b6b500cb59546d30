"""The authorization endpoint (code flow only), and the OP's resume once a sign-in is done.

Without a session that will do, the request becomes a flow (`gateway.login.flows`) and the
browser goes to the hosted sign-in; when the login machine says done, the front end resumes
the authorization here (`finish_authorization`: the client's access policy, then a code).

Order matters for safety: until `client_id` and `redirect_uri` are validated, every error is an
HTML page (never a redirect: that would be an open redirector). After that, errors go back to
the client as `redirect_uri?error=…&state=…&iss=…` (RFC 6749 §4.1.2.1, RFC 9207).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.amr import passed_second_factor
from gateway.clients import Client
from gateway.connectors import local_connector_id
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import (
    AccessDenied,
    InvalidRequest,
    InvalidScope,
    LoginRequired,
    OAuthError,
    RequestNotSupported,
    StoreUnavailable,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from gateway.grants import Authorization, CodeRecord
from gateway.login import machine, upstream
from gateway.login.steps import LoginError
from gateway.op.common import Handler, reject_repeats
from gateway.op.minting import claims_for_scope
from gateway.policy import refusal
from gateway.sessions import Session
from gateway.store import Write

if TYPE_CHECKING:
    from gateway.services import Services

_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url SHA-256, no padding
# One limit for the values a client chooses and gets back (state in the redirect, nonce in the
# ID token): generous for a random value or an encoded return path, short enough that neither
# can bloat a redirect URL or a token (README, Endpoints).
MAX_CLIENT_VALUE = 2048
_PROMPTS = {"none", "login", "consent", "select_account"}
# Cognito's `identity_provider` value for the user pool's own directory (its hosted sign-in).
COGNITO_DIRECTORY = "COGNITO"


class RequestUriNotSupported(OAuthError):
    """OIDC Core §3.1.2.6: the OP does not support the `request_uri` parameter."""

    error = "request_uri_not_supported"


def redirect_with(uri: str, params: dict[str, str | None]) -> RedirectResponse:
    """303 to the client's redirect URI with the response parameters in the query."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if not query:  # e.g. a post-logout redirect without state: the URI as registered
        return RedirectResponse(uri, status_code=303)
    separator = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{separator}{query}", status_code=303)


def endpoint(services: Services) -> Handler:
    clients = services.clients
    pages = services.pages
    issuer = services.settings.issuer

    async def authorize(request: Request) -> Response:
        if request.method == "POST":
            params: QueryParams = QueryParams(await request.body())
        else:
            params = request.query_params
        client = clients.get(params.get("client_id"))
        if client is None:
            return pages.error(
                request,
                "Unknown application",
                "The application that sent you here is not registered with this sign-in service.",
            )
        requested = params.get("redirect_uri")
        if requested is None and "openid" in params.get("scope", "").split():
            # OIDC Core §3.1.2.1: redirect_uri is REQUIRED in an OpenID request, even for a
            # client with a single registered URI (only plain OAuth 2.0 may leave it out).
            redirect_uri = None
        else:
            redirect_uri = clients.match_redirect_uri(client, requested)
        if redirect_uri is None:
            return pages.error(
                request,
                "Invalid redirect address",
                "The application asked to return you to an address it has not registered, "
                "so you were not sent there.",
            )
        state = params.get("state")
        try:
            if state is not None and len(state) > MAX_CLIENT_VALUE:
                state = None  # not echoed: the error says why
                raise InvalidRequest(f"state is longer than {MAX_CLIENT_VALUE} characters")
            reject_repeats([k for k, _ in params.multi_items()])
            request_fields = _validate(client, params)
            cookie = pages.cookie(request, services.settings.sessions.cookie_name)
            session = await services.sessions.load(cookie)
            prompt = request_fields["prompt"]
            hint = params.get("id_token_hint")
            if hint is not None:
                expected = await _hinted_subject(services, client, hint)
                if session is not None and session.identity_id != expected:
                    # The application expects another user than the one signed in here:
                    # never hand it a code for the wrong person (OIDC Core §3.1.2.1).
                    if "none" in prompt:
                        raise LoginRequired("the signed-in user is not the one the hint names")
                    session = None  # the user signs in again, as whoever they are
            max_age = request_fields["max_age"]
            # max_age=0 means "authenticate now", like prompt=login (OIDC Core §3.1.2.1).
            fresh_enough = session is not None and (
                max_age is None or (max_age > 0 and int(time.time()) - session.auth_time <= max_age)
            )
            step_up = None
            if session is not None and cookie and fresh_enough and "login" not in prompt:
                if needs_step_up(services, client.client_id, session):
                    step_up = session  # signed in, but this client wants a second factor
                else:
                    return await finish_authorization(
                        services,
                        session,
                        cookie,
                        client_id=client.client_id,
                        redirect_uri=redirect_uri,
                        state=state,
                        **_code_fields(request_fields),
                    )
            if "none" in prompt:
                raise LoginRequired(
                    "this application needs a second factor"
                    if step_up
                    else "the user is not signed in"
                )
            chosen = params.get("identity_provider")
            if chosen == COGNITO_DIRECTORY:
                # Cognito's name for the user pool's own directory: the hosted sign-in form
                # (never a connector's id, which are lower case), and no home-realm detour.
                if local_connector_id(services.connectors) is None:
                    raise InvalidRequest("identity_provider=COGNITO: there is no user directory")
            elif chosen is not None and chosen not in services.connectors:
                raise InvalidRequest("identity_provider names no configured connector")
        except OAuthError as exc:
            return redirect_with(redirect_uri, {**exc.as_dict(), "state": state, "iss": issuer})
        except StoreUnavailable:
            return pages.error(
                request,
                "Temporarily unavailable",
                "Sign-in is unavailable at the moment. Please try again in a minute.",
                503,
            )
        browser, new_cookie = services.csrf.browser_secret(request)
        flow = await services.flows.create(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            state=state,
            browser=services.flows.browser_binding(browser),
            **request_fields,
        )
        response: Response = RedirectResponse(f"/login?flow={flow.flow_id}", status_code=303)
        if step_up is not None:  # the hosted pages' second-factor step, from the session
            parked = await machine.step_up(services, flow, step_up)
            response = RedirectResponse(f"/login/mfa?flow={parked.flow.flow_id}", status_code=303)
        # identity_provider= names the IdP (COGNITO: the sign-in form, as no redirect connector
        # has that id); else a login_hint's e-mail domain may (home realm).
        chosen = params.get("identity_provider") or services.settings.home_realm(
            params.get("login_hint")
        )
        connector = services.redirects.get(chosen or "")
        if connector is not None and step_up is None:
            try:
                begun = await upstream.start(services, flow, connector)
            except LoginError as exc:
                raise exc.page() from None
            response = upstream.browser_to_idp(services, request, connector, begun)
        if new_cookie:
            pages.set_cookie(response, CSRF_COOKIE, browser)
        return response

    return authorize


def _validate(client: Client, params: QueryParams) -> dict[str, Any]:
    """Check an authorization request whose client and redirect URI are already trusted."""
    if "request_uri" in params:
        raise RequestUriNotSupported("request_uri is not supported")
    if "request" in params:
        raise RequestNotSupported("request objects are not supported")
    response_type = params.get("response_type")
    if not response_type:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only the authorization code flow (code) is supported")
    if "authorization_code" not in client.config.grant_types:
        raise UnauthorizedClient("this client may not use the authorization code grant")
    if params.get("response_mode", "query") != "query":
        raise InvalidRequest("only response_mode=query is supported")
    scope = params.get("scope", "").split()
    if not scope:
        raise InvalidScope("scope is required")
    unknown = set(scope) - client.config.scopes
    if unknown:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(sorted(unknown))}")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        # RFC 9700 §2.1.1: PKCE for every client; public clients have no other protection.
        raise InvalidRequest("code_challenge is required (PKCE with S256)")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _PKCE_CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 value")
    prompt = params.get("prompt", "").split()
    if set(prompt) - _PROMPTS:
        raise InvalidRequest("unknown prompt value")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")
    max_age: int | None = None
    if params.get("max_age") is not None:
        try:
            max_age = int(params["max_age"])
        except ValueError:
            raise InvalidRequest("max_age must be a number of seconds") from None
        if max_age < 0:
            raise InvalidRequest("max_age must not be negative")
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > MAX_CLIENT_VALUE:
        raise InvalidRequest(f"nonce is longer than {MAX_CLIENT_VALUE} characters")
    login_hint = params.get("login_hint")
    return {
        "scope": scope,
        "nonce": nonce,
        "code_challenge": challenge,
        "prompt": prompt,
        "max_age": max_age,
        "login_hint": login_hint[:254] if login_hint else None,
    }


async def _hinted_subject(services: Services, client: Client, hint: str) -> str:
    """The `sub` of a valid `id_token_hint`: an ID token this gateway issued to this client
    (expired is fine: it names who the client believes is signed in)."""
    try:
        claims = await services.tokens.verify_id_token_hint(hint)
    except ValueError:
        raise InvalidRequest("id_token_hint is not an ID token issued here") from None
    audience = claims["aud"]
    if client.client_id not in (audience if isinstance(audience, list) else [audience]):
        raise InvalidRequest("id_token_hint was issued to another client")
    return str(claims["sub"])


def needs_step_up(services: Services, client_id: str, session: Session) -> bool:
    """Does this client demand a second factor this session has not passed?"""
    client = services.settings.client(client_id)
    return bool(client and client.demands_mfa) and not passed_second_factor(session.amr)


def _code_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: fields[k] for k in ("scope", "nonce", "code_challenge")}


async def finish_authorization(
    services: Services,
    session: Session,
    session_cookie: str,
    *,
    client_id: str,
    redirect_uri: str,
    state: str | None,
    scope: list[str],
    nonce: str | None,
    code_challenge: str | None,
    batch: list[Write] | None = None,
) -> Response:
    """Issue a code for a signed-in session and send the browser back to the client — unless
    the client's `access` policy refuses this user (`access_denied`, naming the rule). With
    `batch`, the code's writes join the sign-in's (the caller sends them before answering)."""
    client = services.clients.get(client_id)
    policy = client.config.access if client else None
    if policy is not None:
        reason = refusal(policy, session, where=f"application {client_id}")
        if reason:
            await services.audit.record(
                "sign_in.refused", client_id=client_id, identity_id=session.identity_id
            )
            error = AccessDenied(reason)
            return redirect_with(
                redirect_uri, {**error.as_dict(), "state": state, "iss": services.settings.issuer}
            )
    authorization = Authorization(
        sub=session.identity_id,
        client_id=client_id,
        scope=scope,
        auth_time=session.auth_time,
        sid=session.sid,
        amr=session.amr,
        profile=claims_for_scope(session.profile, scope),
        nonce=nonce,
        connector_id=session.connector_id,
        upstream=session.upstream,
        subject=session.subject,
    )
    code = await services.grants.issue_code(
        CodeRecord(
            authorization=authorization, redirect_uri=redirect_uri, code_challenge=code_challenge
        ),
        ttl=services.settings.tokens.code_ttl,
        batch=batch,
    )
    await services.sessions.add_client(session_cookie, session, client_id, batch)
    return redirect_with(
        redirect_uri, {"code": code, "state": state, "iss": services.settings.issuer}
    )
