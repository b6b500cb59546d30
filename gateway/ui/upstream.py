"""Signing in at an upstream IdP from the hosted pages: the buttons, the callbacks.

`POST /login/{connector}/start` sends the browser to the IdP (`gateway.login.upstream.start`);
`/login/{connector}/callback` (and oauth2-proxy's `/oauth2/callback`, Cognito's
`/oauth2/idpresponse`) hand its answer to the machine (`gateway.login.upstream.answer`), then
on to the second factor or the end of the sign-in (`gateway.ui.finish.proceed`). Answers
POSTed cross-site come back same-site first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from gateway.connectors import ConnectorError, RedirectConnector, UpstreamUnavailable
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.login import upstream
from gateway.login.flows import Flow
from gateway.login.steps import LoginError
from gateway.text import Phrase
from gateway.ui.finish import proceed
from gateway.ui.flow_pages import context, flow_for

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services


def redirect_connector(services: Services, connector_id: str) -> RedirectConnector:
    connector = services.redirects.get(connector_id)
    if connector is None:
        raise PageError("Unknown sign-in method", "Choose a sign-in method from the list.", 404)
    return connector


async def start_redirect(
    services: Services, request: Request, flow: Flow, connector: RedirectConnector
) -> Response:
    """Send the browser to an upstream IdP, remembering the connector's state on the flow."""
    try:
        begun = await upstream.start(services, flow, connector)
    except LoginError as exc:
        raise exc.page() from None
    return upstream.browser_to_idp(services, request, connector, begun)


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
    try:
        step = await upstream.answer(
            services, flow, connector, state, params, context(services, request)
        )
    except LoginError as exc:
        raise exc.page() from None
    except UpstreamUnavailable as exc:  # the IdP's fault, not the user's: not a 400
        raise PageError(
            "Sign-in unavailable",
            Phrase(
                "%(problem)s. Try again in a few moments, or choose another sign-in method.",
                problem=str(exc),
            ),
            exc.status,
        ) from None
    except ConnectorError as exc:
        raise PageError("Sign-in failed", str(exc), 400) from None
    return await proceed(services, request, step)


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


def shared_callback(services: Services, path: str) -> Handler:
    """GET (or form_post POST) at a callback URL that names no connector — oauth2-proxy's
    `/oauth2/callback`, Cognito's `/oauth2/idpresponse` — for connectors configured to send
    that redirect URI (`oauth2_proxy_callback`, `cognito_callback`): the flow named by `state`
    says which connector answers, and only if that connector really sent this redirect URI
    (else the IdP's answer for one path could be replayed at another)."""

    async def page(request: Request) -> Response:
        params = await callback_params(services, request)
        if isinstance(params, Response):
            return params
        state = params.get("state") or ""
        flow = await flow_for(services, request, state.split(".", 1)[0])
        connector = services.redirects.get(upstream.waiting_connector(flow) or "")
        if (
            connector is None
            or upstream.callback_url(services, connector) != f"{services.settings.issuer}{path}"
        ):
            raise PageError(
                "Sign-in failed",
                "The answer of the identity provider does not belong to this sign-in. "
                "Start again from the application.",
            )
        return await finish_upstream(services, request, connector, state, params)

    return page
