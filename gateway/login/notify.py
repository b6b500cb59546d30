"""Messages to users from every front end: e-mail and text messages, rendered in the user's
language (their `locale` when the deployment offers it, else the language of the page they are
on, or the deployment's first) and sent in the background, so the provider's speed is never a
signal of whether an account exists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.login.registration import VERIFY, VERIFY_PHONE

if TYPE_CHECKING:
    from gateway.login.machine import CodeToSend
    from gateway.services import Services
    from gateway.users.directory import User


def language_for(services: Services, request: Request | None, locale: str | None) -> str:
    """The user's `locale` when the deployment offers it; else the page's language (an API
    call has none: the deployment's first language)."""
    base = (locale or "").lower().replace("_", "-").split("-")[0]
    if base in services.settings.ui.languages:
        return base
    return services.pages.language(request) if request else services.settings.ui.languages[0]


def email(
    services: Services,
    request: Request | None,
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
    request: Request | None,
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


async def send_code(services: Services, request: Request | None, user: User) -> None:
    """Issue a verification code and a link, and e-mail them (in the background). The link
    is built on the configured issuer, never on the request's Host (no forged-host links)."""
    code = await services.codes.issue(VERIFY, user.user_id)
    token = await services.codes.issue_link(VERIFY, user.user_id)
    email(
        services,
        request,
        user.email,
        "verify_email.txt",
        user.locale,
        code=code,
        link=f"{services.settings.issuer}/signup/verify/link?token={token}",
    )


async def send_phone_code(services: Services, request: Request | None, user: User) -> None:
    """Issue a phone verification code and send it by text message (in the background)."""
    assert user.phone_number  # noqa: S101 - callers check
    code = await services.codes.issue(VERIFY_PHONE, user.user_id)
    text_message(
        services,
        request,
        user.phone_number,
        "verify_phone.txt",
        VERIFY_PHONE,
        user.locale,
        code=code,
    )


def code(services: Services, request: Request | None, sent: CodeToSend) -> None:
    """Deliver a code the login machine issued (a second factor, a passwordless sign-in),
    by the channel it names."""
    if sent.channel == "sms":
        text_message(
            services, request, sent.to, "mfa_code_sms.txt", "mfa", sent.locale, code=sent.code
        )
    else:
        email(services, request, sent.to, sent.template, sent.locale, code=sent.code)
