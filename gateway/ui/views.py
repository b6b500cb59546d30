"""Hosted page handlers: home, sign-in, and the /logout shortcut.

Sign-in is a plain HTML form (no JavaScript). A POST checks CSRF and the flow's browser binding,
asks the connector, resolves the identity, consumes the flow (once), starts a *new* session
(fresh id, so a planted session id is worthless) and finishes the authorization with a 303.
Unknown users, wrong passwords and disabled accounts get the same answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import (
    ConnectorError,
    PasswordConnector,
    RedirectConnector,
    UpstreamIdentity,
    UpstreamUnavailable,
    local_connector_id,
)
from gateway.crypto import constant_time_equals
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.flows import Flow
from gateway.forwarded import client_address
from gateway.op.authorize import finish_flow
from gateway.op.common import Handler
from gateway.ratelimit import Limit, RateLimited
from gateway.sessions import Session
from gateway.store import Write
from gateway.text import Phrase
from gateway.ui.direct import account_flow, for_account
from gateway.users.directory import User, normalize_email
from gateway.users.passwords import MAX_PASSWORD_BYTES

if TYPE_CHECKING:
    from gateway.services import Services

EXPIRED = PageError(
    "This sign-in has expired",
    "Go back to the application and start signing in again.",
)


def home(services: Services) -> Handler:
    async def page(request: Request) -> Response:
        cookie = services.pages.cookie(request, services.settings.sessions.cookie_name)
        session = await services.sessions.load(cookie)
        identity = await services.identities.get(session.identity_id) if session else None
        linked = {login.provider for login in identity.logins} if identity else set()
        local = session is not None and session.connector_id == local_connector_id(
            services.connectors
        )
        user = await services.users.get(session.subject) if session and local else None
        claims = services.users.claims(user) if user else (session.profile if session else {})
        return services.pages.render(
            request,
            "home.html",
            {
                "email": session.profile.get("email") if session else None,
                "identity_id": session.identity_id if session else None,
                "demo": services.settings.demo,
                "local_account": local,
                "profile": profile_rows(claims),
                "mfa_on": services.settings.user_pool.mfa != "off",
                "passkeys_on": services.passkeys.enabled,
                "federated_mfa": session is not None
                and services.settings.user_pool.federated_mfa != "off",
                "linked": [c for c in services.connectors.values() if c.id in linked],
                "linkable": [c for c in services.redirects.values() if c.id not in linked]
                if session
                else [],
            },
        )

    return page


PROFILE_LABELS = {
    "name": "Name",
    "given_name": "Given name",
    "family_name": "Family name",
    "preferred_username": "Username",
    "phone_number": "Phone number",
    "locale": "Language",
    "groups": "Groups",
}


def profile_rows(claims: dict[str, Any]) -> list[tuple[str, str]]:
    """What the account page shows of a profile: known claims by label, then custom ones."""
    rows = []
    for claim, label in PROFILE_LABELS.items():
        value = claims.get(claim)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if value:
            verified = claim == "phone_number" and claims.get("phone_number_verified") is True
            rows.append((label, f"{value} (verified)" if verified else str(value)))
    rows += [
        (k.removeprefix("custom:"), str(v)) for k, v in claims.items() if k.startswith("custom:")
    ]
    return rows


def logout_page(services: Services) -> Handler:
    async def page(request: Request) -> Response:
        return RedirectResponse("/oauth2/logout", status_code=303)

    return page


async def flow_for(services: Services, request: Request, flow_id: str | None) -> Flow:
    """The pending flow, if it exists and belongs to this browser."""
    flow = await services.flows.get(flow_id) if flow_id else None
    if flow is None:
        raise EXPIRED
    browser = services.pages.cookie(request, CSRF_COOKIE)
    if not browser or not constant_time_equals(
        services.flows.browser_binding(browser), flow.browser
    ):
        raise PageError(
            "Sign-in started elsewhere",
            "This sign-in was started in another browser, or cookies are blocked. "
            "Start again from the application.",
        )
    return flow


async def complete_login(
    services: Services, request: Request, flow: Flow, upstream: UpstreamIdentity
) -> Response:
    """The end of every sign-in, whatever the connector: the second factor when one is due,
    then resolve the identity, consume the flow (once), replace any session with a fresh one,
    and finish the authorization."""
    if flow.link_sid is not None:
        from gateway.ui.account import complete_link

        return await complete_link(services, request, flow, upstream)
    from gateway.ui.mfa import second_factor_gate

    second_step = await second_factor_gate(services, flow, upstream)
    if second_step is not None:  # no session until the second factor is done
        return second_step
    # One round trip consumes the flow and looks the login up; a second one (below) sends the
    # audit entry, the session and the code, before the browser gets the cookie and the code.
    taken, owner = await services.store.read_many(
        [
            services.flows.taking(flow),
            services.identities.finding(upstream.connector_id, upstream.subject),
        ]
    )
    if taken is None:  # a double submit or a replayed callback already finished it
        raise EXPIRED
    batch: list[Write] = []
    session, cookie = await start_session(
        services,
        request,
        upstream,
        client_id=flow.client_id,
        batch=batch,
        identity_id=services.identities.found(owner),
    )
    # The flow as read when this answer arrived: what finishing it uses never changes.
    finished = await finish_flow(services, flow, session, cookie, batch)
    await services.store.write_many(batch)
    services.pages.set_cookie(finished, services.settings.sessions.cookie_name, cookie)
    return finished


async def sign_in_local(
    services: Services, request: Request, flow: Flow, user: User, amr: list[str]
) -> Response:
    """Finish a sign-in to a local account (after a password, a verification, a passkey)."""
    local = local_connector_id(services.connectors) or "local"
    upstream = UpstreamIdentity(local, user.user_id, services.users.claims(user), amr=amr)
    return await complete_login(services, request, flow, upstream)


async def start_session(
    services: Services,
    request: Request,
    upstream: UpstreamIdentity,
    client_id: str | None,
    batch: list[Write] | None = None,
    identity_id: str | None = None,
) -> tuple[Session, str]:
    """Resolve the identity (unless the caller found it linked already), end the browser's
    old session and start a fresh one (new ID: no fixation). The caller sets the returned
    cookie on its response; with `batch`, it sends the new session's writes first
    (`gateway.store.write`)."""
    from gateway.ui.account import resolve_identity

    identity_id = identity_id or await resolve_identity(services, upstream)
    await sign_in_outcome(
        services,
        upstream.connector_id,
        "success",
        batch=batch,
        identity_id=identity_id,
        client_id=client_id,
        ip=client_address(services.settings, request),
    )
    pages = services.pages
    cookie_name = services.settings.sessions.cookie_name
    await services.sessions.end(pages.cookie(request, cookie_name))
    session, cookie = await services.sessions.create(
        identity_id=identity_id,
        connector_id=upstream.connector_id,
        subject=upstream.subject,
        amr=upstream.amr,
        profile=upstream.claims,
        upstream=upstream.tokens,
        device=request.headers.get("user-agent"),
        # A registered client gets tokens from this session right away (for logout).
        client_id=client_id if client_id and services.clients.get(client_id) else None,
        batch=batch,
    )
    return session, cookie


async def sign_in_outcome(
    services: Services,
    connector_id: str,
    result: str,
    batch: list[Write] | None = None,
    **fields: Any,
) -> None:
    """Count and audit one sign-in attempt (result: success, failure, limited)."""
    services.metrics.sign_ins.labels(connector_id, result).inc()
    await services.audit.record(f"sign_in.{result}", batch, connector=connector_id, **fields)


def flow_form(
    services: Services,
    request: Request,
    flow: Flow,
    template: str,
    purpose: str,
    status_code: int = 200,
    form_targets: str = "",
    allow_scripts: bool = False,
    **context: Any,
) -> Response:
    """A hosted form bound to a flow, with the CSRF token for `purpose:<flow id>`.

    Browsers apply CSP form-action to the redirects after a submission too, and a flow's forms
    can end in the 303 back to the flow's redirect URI (a client's, validated when the flow was
    created), so its origin is allowed alongside `form_targets`."""
    browser = services.pages.cookie(request, CSRF_COOKIE) or ""
    back = urlsplit(flow.redirect_uri)
    form_targets = f"{form_targets} {back.scheme}://{back.netloc}".strip()
    return services.pages.render(
        request,
        template,
        {
            "flow_id": flow.flow_id,
            "client_id": flow.client_id,  # the client's branding, if it has its own
            "csrf": services.csrf.token(browser, f"{purpose}:{flow.flow_id}"),
            **context,
        },
        status_code=status_code,
        form_targets=form_targets,
        allow_scripts=allow_scripts,
    )


def redirect_connector(services: Services, connector_id: str) -> RedirectConnector:
    connector = services.redirects.get(connector_id)
    if connector is None:
        raise PageError("Unknown sign-in method", "Choose a sign-in method from the list.", 404)
    return connector


def callback_url(services: Services, connector: RedirectConnector) -> str:
    """Where the IdP sends the browser back: `/login/{id}/callback`, or oauth2-proxy's
    `/oauth2/callback` for connectors that keep an oauth2-proxy registration."""
    issuer = services.settings.issuer
    if getattr(getattr(connector, "config", None), "oauth2_proxy_callback", False):
        return f"{issuer}/oauth2/callback"
    return f"{issuer}/login/{connector.id}/callback"


async def start_redirect(
    services: Services, request: Request, flow: Flow, connector: RedirectConnector
) -> Response:
    """Send the browser to an upstream IdP, remembering the connector's state on the flow."""
    callback = callback_url(services, connector)
    try:
        start = await connector.start(callback, flow.flow_id)
    except ConnectorError as exc:
        raise PageError(
            "Sign-in unavailable",
            Phrase(
                "%(problem)s Try again later or choose another sign-in method.", problem=str(exc)
            ),
            502,
        ) from None
    await services.flows.save_connector_state(flow, {**start.state, "connector": connector.id})
    if start.form is not None:  # SAML HTTP-POST binding: the browser posts the request
        return services.pages.render(
            request,
            "post_form.html",
            {"action": start.redirect_url, "fields": start.form},
            form_targets=" ".join(connector.form_origins()),
            allow_scripts=True,
        )
    return RedirectResponse(start.redirect_url, status_code=303)


def connector_start(services: Services) -> Handler:
    """POST /login/{connector}/start: a button on the sign-in page."""

    async def page(request: Request) -> Response:
        connector = redirect_connector(services, request.path_params["connector"])
        form = await request.form(max_fields=8, max_part_size=4096)
        flow_id = str(form.get("flow") or "")
        services.csrf.check(request, form, f"login:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        return await start_redirect(services, request, flow, connector)

    return page


RESUMED = "_cognate_resumed"


def repost_same_site(
    services: Services, request: Request, fields: dict[str, str]
) -> Response | None:
    """An IdP's answer POSTed cross-site (SAML ACS, OIDC form_post) comes without our
    SameSite=Lax cookies, so the flow's browser binding cannot be checked. Rather than weaken
    the cookie, answer with a page that posts the same fields to the same URL from our own
    origin — a same-site request, which carries the cookies. None when the cookies are here."""
    if services.pages.cookie(request, CSRF_COOKIE) is not None or fields.get(RESUMED):
        fields.pop(RESUMED, None)
        return None
    return services.pages.render(
        request,
        "post_form.html",
        {"action": request.url.path, "fields": {**fields, RESUMED: "1"}},
        allow_scripts=True,
    )


async def finish_upstream(
    services: Services,
    request: Request,
    connector: RedirectConnector,
    state: str,
    params: dict[str, str],
) -> Response:
    """An IdP's answer (OIDC/OAuth2 callback, SAML ACS) for the flow `state` names: the flow
    must be this browser's and have sent exactly this state to this very connector."""
    flow = await flow_for(services, request, state.split(".", 1)[0])
    saved = flow.connector_state
    if saved.get("connector") != connector.id or not constant_time_equals(
        str(saved.get("state", "")), state
    ):
        raise PageError(
            "Sign-in failed",
            "The answer of the identity provider does not "
            "belong to this sign-in. Start again from the application.",
        )
    try:
        upstream = await connector.finish(params, saved)
    except ConnectorError as exc:
        await sign_in_outcome(
            services,
            connector.id,
            "failure",
            reason=str(exc)[:200],
            ip=client_address(services.settings, request),
        )
        await services.flows.take(flow.flow_id)  # a failed answer cannot be retried
        if isinstance(exc, UpstreamUnavailable):  # the IdP's fault, not the user's: not a 400
            raise PageError(
                "Sign-in unavailable",
                Phrase(
                    "%(problem)s. Try again in a few moments, or choose another sign-in method.",
                    problem=str(exc),
                ),
                exc.status,
            ) from None
        raise PageError("Sign-in failed", str(exc), 400) from None
    return await complete_login(services, request, flow, upstream)


def connector_callback(services: Services) -> Handler:
    """GET (or form_post POST) /login/{connector}/callback: the IdP sends the browser back."""

    async def page(request: Request) -> Response:
        connector = redirect_connector(services, request.path_params["connector"])
        params = await callback_params(services, request)
        if isinstance(params, Response):
            return params
        return await finish_upstream(
            services, request, connector, params.get("state") or "", params
        )

    return page


async def callback_params(services: Services, request: Request) -> dict[str, str] | Response:
    """An IdP's answer: the query, or a form_post body (Sign in with Apple) — which, arriving
    cross-site without our cookies, first gets the same-site re-post page."""
    if request.method != "POST":
        return dict(request.query_params)
    params = {k: str(v) for k, v in (await request.form(max_fields=16)).items()}
    repost = repost_same_site(services, request, params)
    return repost if repost is not None else params


def oauth2_proxy_callback(services: Services) -> Handler:
    """GET (or form_post POST) /oauth2/callback: oauth2-proxy's callback URL, for connectors
    with `oauth2_proxy_callback`; the flow named by `state` says which connector answers."""

    async def page(request: Request) -> Response:
        params = await callback_params(services, request)
        if isinstance(params, Response):
            return params
        state = params.get("state") or ""
        flow = await flow_for(services, request, state.split(".", 1)[0])
        connector = services.redirects.get(str(flow.connector_state.get("connector", "")))
        if (
            connector is None
            or callback_url(services, connector) != f"{services.settings.issuer}/oauth2/callback"
        ):
            raise PageError(
                "Sign-in failed",
                "The answer of the identity provider does not belong to this sign-in. "
                "Start again from the application.",
            )
        return await finish_upstream(services, request, connector, state, params)

    return page


async def login_form(
    services: Services,
    request: Request,
    flow: Flow,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The sign-in page of a flow: password form, passkey button, one button per IdP."""
    pool = services.settings.user_pool
    client = services.clients.get(flow.client_id)
    passwords = [c for c in services.connectors.values() if isinstance(c, PasswordConnector)]
    passkey_options = None
    if services.passkeys.enabled and local_connector_id(services.connectors) is not None:
        passkey_options = await services.passkeys.authentication_options(
            "login", flow.flow_id, None
        )
    redirects = list(services.redirects.values())
    # CSP form-action also governs where a submitted form may redirect: allow the IdPs.
    targets = " ".join(sorted({o for c in redirects for o in c.form_origins()}))
    return flow_form(
        services,
        request,
        flow,
        "login.html",
        "login",
        status,
        targets,
        client_name=client.name
        if client
        else ("your account" if for_account(services, flow) else "the application"),
        email=email or flow.login_hint or "",
        error=error,
        allow_scripts=passkey_options is not None,
        buttons=redirects,
        connectors=passwords,
        passkey_options=passkey_options,
        sign_up=pool.self_sign_up,
        usernames=pool.usernames,
        home_realms=any(getattr(c, "domains", None) for c in services.settings.connectors),
    )


def login(services: Services) -> Handler:
    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow_id = request.query_params.get("flow")
            if not flow_id:
                return await account_flow(services, request, "/login")
            return await login_form(services, request, await flow_for(services, request, flow_id))
        form: FormData = await request.form(max_fields=16, max_part_size=16 * 1024)
        flow_id = str(form.get("flow") or "")
        services.csrf.check(request, form, f"login:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        connector = services.connectors.get(str(form.get("connector") or "local"))
        if connector is None or not isinstance(connector, PasswordConnector):
            raise PageError("Unknown sign-in method", "Choose a sign-in method from the list.")
        email = str(form.get("email") or "").strip()[:254]
        realm = services.redirects.get(services.settings.home_realm(email) or "")
        if realm is not None:
            # Home-realm discovery: this domain signs in at its own IdP, never with a password.
            return await start_redirect(services, request, flow, realm)
        password = str(form.get("password") or "")
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            return await login_form(
                services, request, flow, email, "That password is too long.", 400
            )
        # Limits are checked before any password work and counted per failure, the same for
        # existing and unknown accounts (no enumeration through the limiter either).
        config = services.settings.rate_limits
        checks = [
            (
                Limit("login-account", config.login_per_account, config.window),
                normalize_email(email),
            ),
            (
                Limit("login-ip", config.login_per_ip, config.window),
                client_address(services.settings, request),
            ),
        ]
        try:
            await services.limiter.check(checks)
        except RateLimited as exc:
            await sign_in_outcome(
                services, connector.id, "limited", account=normalize_email(email), ip=checks[1][1]
            )
            page = await login_form(
                services,
                request,
                flow,
                email,
                "Too many attempts. Wait a few minutes and try again.",
                429,
            )
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        upstream = await connector.login(email, password) if email and password else None
        if upstream is None:
            await sign_in_outcome(
                services, connector.id, "failure", account=normalize_email(email), ip=checks[1][1]
            )
            await services.limiter.fail(checks)
            return await login_form(
                services, request, flow, email, "Incorrect email or password.", 401
            )
        if (
            services.settings.user_pool.requires_verification
            and connector.type == "local"
            and upstream.claims.get("email_verified") is not True
        ):
            # The password was right, but the address was never proven: prove it first.
            from gateway.ui.signup import send_code, to_verification

            account = await services.users.get(upstream.subject)
            if account is not None:
                await send_code(services, request, account)
            return await to_verification(services, flow, str(upstream.claims.get("email")))
        return await complete_login(services, request, flow, upstream)

    return page
