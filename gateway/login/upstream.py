"""Signing in at an upstream IdP: the redirect there, and its answer back.

`start` asks the connector where to send the browser and keeps its pending state on the flow
(`progress.AtIdp`); `answer` checks that an IdP's answer belongs to this very flow and
connector (its `state`, compared in constant time) before the connector validates it, and a
failed answer ends the flow (it cannot be retried). `browser_to_idp` is the response that
sends the browser on: a redirect, or (SAML HTTP-POST binding) a page that posts the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.connectors import ConnectorError, LoginStart, RedirectConnector
from gateway.crypto import constant_time_equals
from gateway.login.flows import Flow
from gateway.login.machine import Context, after_proof, outcome
from gateway.login.progress import AtIdp
from gateway.login.steps import Done, IdpUnavailable, LoginError, SecondFactorDue
from gateway.text import Phrase

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gateway.services import Services


class ForeignAnswer(LoginError):
    """An IdP's answer that does not belong to this flow (another state, another connector)."""

    message = (
        "The answer of the identity provider does not belong to this sign-in. "
        "Start again from the application."
    )


def callback_url(services: Services, connector: RedirectConnector) -> str:
    """Where the IdP sends the browser back: `/login/{id}/callback`, or oauth2-proxy's
    `/oauth2/callback` or Cognito's `/oauth2/idpresponse` for connectors that keep an IdP
    registration made for oauth2-proxy or for a Cognito user pool."""
    issuer = services.settings.issuer
    config = getattr(connector, "config", None)
    if getattr(config, "oauth2_proxy_callback", False):
        return f"{issuer}/oauth2/callback"
    if getattr(config, "cognito_callback", False):
        return f"{issuer}/oauth2/idpresponse"
    return f"{issuer}/login/{connector.id}/callback"


async def start(services: Services, flow: Flow, connector: RedirectConnector) -> LoginStart:
    """Where to send the browser for `connector`, its pending state kept on the flow.
    IdpUnavailable when the IdP cannot be asked (its metadata unreachable...)."""
    try:
        begun = await connector.start(callback_url(services, connector), flow.flow_id)
    except ConnectorError as exc:
        raise IdpUnavailable(
            Phrase(
                "%(problem)s Try again later or choose another sign-in method.", problem=str(exc)
            )
        ) from None
    await services.flows.save(flow, AtIdp(connector.id, begun.pending))
    return begun


def browser_to_idp(
    services: Services, request: Request, connector: RedirectConnector, begun: LoginStart
) -> Response:
    """The answer that sends the browser to the IdP."""
    if begun.form is not None:  # SAML HTTP-POST binding: the browser posts the request
        return services.pages.render(
            request,
            "post_form.html",
            {"action": begun.redirect_url, "fields": begun.form},
            form_targets=" ".join(connector.form_origins()),
            allow_scripts=True,
        )
    return RedirectResponse(begun.redirect_url, status_code=303)


def waiting_connector(flow: Flow) -> str | None:
    """The connector whose answer the flow waits for, if any."""
    return flow.progress.connector if isinstance(flow.progress, AtIdp) else None


async def answer(
    services: Services,
    flow: Flow,
    connector: RedirectConnector,
    state: str,
    params: Mapping[str, str],
    ctx: Context,
) -> SecondFactorDue | Done:
    """An IdP's answer (OIDC/OAuth2 callback, SAML ACS) for `flow`: it must have sent exactly
    this state to this very connector. ConnectorError (after the flow is ended) when the
    connector refuses the answer."""
    progress = flow.progress
    if (
        not isinstance(progress, AtIdp)
        or progress.connector != connector.id
        or not constant_time_equals(progress.pending.state, state)
    ):
        raise ForeignAnswer
    try:
        upstream = await connector.finish(params, progress.pending)
    except ConnectorError as exc:
        await outcome(services, connector.id, "failure", reason=str(exc)[:200], ip=ctx.ip)
        await services.flows.take(flow.flow_id)  # a failed answer cannot be retried
        raise
    return await after_proof(services, flow, upstream)
