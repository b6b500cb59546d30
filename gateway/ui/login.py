"""The sign-in page: the password form, the passkey button, one button per IdP.

A plain HTML form (no JavaScript needed). A POST checks CSRF and the flow's browser binding,
then hands the password to the machine (`gateway.login.machine.password`: limits, audit, the
same answer for unknown users, wrong passwords and disabled accounts); an e-mail domain with
its own IdP (home-realm discovery) goes there instead, never to a password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from gateway.connectors import PasswordConnector, local_connector_id
from gateway.errors import PageError
from gateway.login import machine
from gateway.login.flows import Flow
from gateway.login.progress import NewPassword
from gateway.login.steps import IncorrectPassword, LoginError, SignInExpired, TooManyAttempts
from gateway.ui.direct import account_flow, application_flow, for_account, names_an_application
from gateway.ui.finish import proceed
from gateway.ui.flow_pages import context, flow_for, flow_form
from gateway.ui.upstream import start_redirect
from gateway.users.directory import InvalidPassword, choose_another
from gateway.users.passwords import MAX_PASSWORD_BYTES

if TYPE_CHECKING:
    from gateway.op.common import Handler
    from gateway.services import Services


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
    from_application = application_flow(services, "/login")

    async def page(request: Request) -> Response:
        if request.method == "GET":
            if names_an_application(request):  # Cognito's /login?client_id=…&redirect_uri=…
                return await from_application(request)
            flow_id = request.query_params.get("flow")
            if not flow_id:
                return await account_flow(services, request, "/login")
            begun = machine.first_step(services, await flow_for(services, request, flow_id))
            return await login_form(services, request, begun.flow)
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
        try:
            step = await machine.password(
                services, flow, connector, email, password, context(services, request)
            )
        except TooManyAttempts as exc:
            page = await login_form(services, request, flow, email, exc.message, exc.status)
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        except IncorrectPassword as exc:
            return await login_form(services, request, flow, email, exc.message, exc.status)
        return await proceed(services, request, step)

    return page


def new_password(services: Services) -> Handler:
    """GET/POST /login/new-password: an account whose password was temporary chooses its
    own (`gateway.login.machine.new_password`), then the sign-in goes on."""

    async def page(request: Request) -> Response:
        if request.method == "GET":
            flow = await flow_for(services, request, request.query_params.get("flow"))
            return _new_password_form(services, request, flow)
        form = await request.form(max_fields=4, max_part_size=8192)
        flow_id = str(form.get("flow") or "")
        services.csrf.check(request, form, f"new-password:{flow_id}")
        flow = await flow_for(services, request, flow_id)
        try:
            step = await machine.new_password(services, flow, str(form.get("password") or ""))
        except InvalidPassword as exc:
            return _new_password_form(services, request, flow, choose_another(exc), 400)
        except LoginError as exc:
            raise exc.page() from None
        return await proceed(services, request, step)

    return page


def _new_password_form(
    services: Services, request: Request, flow: Flow, error: str | None = None, status: int = 200
) -> Response:
    if not isinstance(flow.progress, NewPassword):
        raise SignInExpired().page()
    return flow_form(
        services, request, flow, "new_password.html", "new-password", status, error=error
    )
