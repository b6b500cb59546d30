"""Which identity a sign-in belongs to, and linking another way in to an identity.

`resolve_identity` is asked once per sign-in (by the machine): the login's own identity, or —
when `user_pool.link_by_verified_email` allows it, on a first federated sign-in whose IdP
vouches for the e-mail — the local user's with that same verified e-mail, or a new identity.
Unverified e-mails never link anything, and nothing is ever keyed on e-mail alone.

Linking another way in (the account page's "link a sign-in method") is three steps:
`ask_to_link` (what the person confirms), `confirm_link` (a link flow bound to that very
session), and `link` when the IdP answers: only for that session, and never a login another
identity owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.connectors import UpstreamIdentity, local_connector_id
from gateway.errors import PageError
from gateway.identity.ids import LoginTaken, TooManyLogins
from gateway.login.flows import Flow
from gateway.login.steps import LoginError
from gateway.sessions import Session
from gateway.text import Phrase
from gateway.users.directory import normalize_email

if TYPE_CHECKING:
    from gateway.services import Services


# One string (not split over lines), so the catalogue test finds it in the source.
ALREADY_LINKED = (
    "That %(name)s account already signs in as someone else here. Unlink it there first."  # noqa: E501
)


class LinkExpired(LoginError):
    """The link flow was already used."""

    title = "Link expired"
    message = "This link request was already used. Start again."


class LinkRefused(LoginError):
    """The browser signed in or out since it asked to link."""

    title = "Link refused"
    message = "You signed in or out since you asked to link this account. Start again."


class AlreadyLinked(LoginError):
    """The login already belongs to another identity (`connector_name` names it)."""

    title = "Already linked elsewhere"
    message = ALREADY_LINKED
    status = 409

    def __init__(self, connector_name: str) -> None:
        super().__init__()
        self.connector_name = connector_name

    def page(self) -> PageError:
        return PageError(self.title, Phrase(ALREADY_LINKED, name=self.connector_name), 409)


class TooManySignInMethods(LoginError):
    """The identity has as many logins as it may."""

    title = "Too many sign-in methods"
    message = "Unlink one first."
    status = 409


ACCOUNT_CLIENT = "_account"  # the client_id of link flows: they end on the account page


@dataclass(frozen=True)
class NeedsLinkConfirmation:
    """The signed-in `session` asks to add a sign-in at `connector_id` to its identity: the
    person confirms before anything leaves for the IdP (a link changes who can sign in)."""

    session: Session
    connector_id: str
    email: str | None


def ask_to_link(session: Session, connector_id: str) -> NeedsLinkConfirmation:
    """The first step of linking: what the person is asked to confirm."""
    email = session.profile.get("email")
    return NeedsLinkConfirmation(session, connector_id, email if isinstance(email, str) else None)


async def confirm_link(services: Services, step: NeedsLinkConfirmation, browser: str) -> Flow:
    """Confirmed: a link flow, bound to this browser and to this very session (`link`
    refuses any other), to be sent to the IdP."""
    return await services.flows.create(
        client_id=ACCOUNT_CLIENT,
        redirect_uri=f"{services.settings.issuer}/",
        browser=services.flows.browser_binding(browser),
        link_sid=step.session.sid,
    )


async def resolve_identity(services: Services, upstream: UpstreamIdentity) -> str:
    """The identity of a sign-in: its own login's, or (when the pool allows it, on a first
    federated sign-in with an IdP-verified e-mail) the local user's with that verified e-mail,
    or a new one."""
    known = await services.identities.find(upstream.connector_id, upstream.subject)
    if known is not None:
        return known
    email = upstream.claims.get("email")
    local = local_connector_id(services.connectors)
    if (
        services.settings.user_pool.link_by_verified_email
        and local is not None
        and local != upstream.connector_id
        and upstream.claims.get("email_verified") is True
        and isinstance(email, str)
    ):
        user = await services.users.by_email(normalize_email(email))
        owner = await services.identities.find(local, user.user_id) if user else None
        if user is not None and user.email_verified and owner is not None:
            try:
                await services.identities.link(owner, upstream.connector_id, upstream.subject)
                await services.audit.record(
                    "identity.linked",
                    identity_id=owner,
                    connector=upstream.connector_id,
                    by="verified_email",
                )
                return owner
            except (LoginTaken, TooManyLogins):
                pass  # someone got there first, or no room: fall through to its own identity
    return await services.identities.resolve(upstream.connector_id, upstream.subject)


async def link(
    services: Services, flow: Flow, upstream: UpstreamIdentity, session: Session, ip: str
) -> None:
    """The IdP answered a link flow: add its login to the identity of `session`, which must be
    the very session that asked (`flow.link_sid`). Consumes the flow."""
    if await services.flows.take(flow.flow_id) is None:
        raise LinkExpired
    if session.sid != flow.link_sid:
        raise LinkRefused
    try:
        await services.identities.link(session.identity_id, upstream.connector_id, upstream.subject)
    except LoginTaken:
        raise AlreadyLinked(services.connectors[upstream.connector_id].name) from None
    except TooManyLogins:
        raise TooManySignInMethods from None
    await services.audit.record(
        "identity.linked", identity_id=session.identity_id, connector=upstream.connector_id, ip=ip
    )
