"""What every page of a pending sign-in shares: finding its flow (this browser's only), the
form bound to it (CSRF token for `purpose:<flow id>`), and the page for a refused transition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from gateway.crypto import constant_time_equals
from gateway.csrf import COOKIE as CSRF_COOKIE
from gateway.errors import PageError
from gateway.forwarded import client_address
from gateway.login.flows import Flow
from gateway.login.machine import Context
from gateway.login.steps import FlowExpired

if TYPE_CHECKING:
    from gateway.services import Services

EXPIRED = PageError(FlowExpired.title, FlowExpired.message)


def context(services: Services, request: Request) -> Context:
    """Who is signing in, as far as the request tells (trusted proxies only)."""
    return Context(client_address(services.settings, request), request.headers.get("user-agent"))


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
