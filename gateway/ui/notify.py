"""Messages to users from the hosted pages: e-mail and text messages, rendered in the user's
language (their `locale` when the deployment offers it, else the language of the page they are
on) and sent in the background, so the provider's speed is never a signal of whether an account
exists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from gateway.services import Services


def language_for(services: Services, request: Request, locale: str | None) -> str:
    base = (locale or "").lower().replace("_", "-").split("-")[0]
    return base if base in services.settings.ui.languages else services.pages.language(request)


def email(
    services: Services,
    request: Request,
    to: str,
    template: str,
    locale: str | None = None,
    **context: object,
) -> None:
    """Render `template` (first line `Subject: …`) and e-mail it, in the background."""
    subject, body = services.messages.render(
        template,
        language_for(services, request, locale),
        issuer=services.settings.issuer,
        product=services.settings.ui.product_name,
        minutes=services.codes.ttl // 60,
        **context,
    )
    services.background.spawn(services.email.send(to, subject, body))


def text_message(
    services: Services,
    request: Request,
    to: str,
    template: str,
    purpose: str,
    locale: str | None = None,
    **context: object,
) -> None:
    """Render `template` and send it as a text message, in the background."""
    body = services.messages.text(
        template,
        language_for(services, request, locale),
        issuer=services.settings.issuer,
        product=services.settings.ui.product_name,
        minutes=services.codes.ttl // 60,
        **context,
    ).strip()
    services.background.spawn(services.sms.send(to, body, purpose))
