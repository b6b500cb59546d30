"""Sign-up and address verification, for every front end.

`sign_up` creates an account (when `user_pool.self_sign_up` allows it) with the pool's
attributes and answers the same way for new and existing addresses: an existing address gets
`SignedUp(existing=True)`, for the front end to e-mail a "someone tried to sign up" notice
(in the background, so the mail server's speed is no signal either) while the page reads as
for a new one. The pre_sign_up hook is asked for every sign-up, existing address or not.

`confirm_email` (a code), `confirm_email_link` (the e-mailed link's token) and
`confirm_phone` prove what they name; the post_confirmation hook is told, not asked. A code is
bound to its account, expires and allows a few attempts (`gateway.users.codes`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.login.steps import LoginError, SignInExpired, TooManyAttempts
from gateway.ratelimit import Limit, RateLimited
from gateway.settings import AttributeSettings, UserPoolSettings
from gateway.text import Phrase
from gateway.users.directory import User, UserExists, normalize_email
from gateway.users.hooks import HookFailed
from gateway.users.schema import E164

if TYPE_CHECKING:
    from gateway.services import Services

VERIFY = "verify-email"  # the purpose of e-mail verification codes and links
VERIFY_PHONE = "verify-phone"
VERIFY_NEW_EMAIL = "verify-new-email"  # the code that proves an address an account moves to


class SignUpRefused(LoginError):
    """A sign-up this pool does not take (the message says why)."""


class EmailDomainRefused(SignUpRefused):
    message = "Accounts with this e-mail domain cannot be created here."


class InvalidAttributes(SignUpRefused):
    """An attribute is missing or malformed (the message names the first one)."""


class TooManySignUps(TooManyAttempts):
    template = "Too many sign-ups from here. Try again in %(wait)s."


class SignUpUnavailable(SignUpRefused):
    """The pre_sign_up hook could not be asked: no account is made without its answer."""

    message = "Sign-up is unavailable right now."
    status = 503


class SignUpDenied(SignUpRefused):
    """The pre_sign_up hook said no (its message, if it gave one)."""

    message = "This account cannot be created."
    status = 403


class WrongVerificationCode(LoginError):
    message = "That code is not right, or it has expired."


class VerifyLinkExpired(LoginError):
    title = "Link expired"
    message = "This link was already used or has expired. Sign in to get a new code."


@dataclass(frozen=True)
class SignedUp:
    """A new account (`user`), or (`existing`) an address that already had one."""

    user: User | None
    existing: bool = False
    confirmed: bool = False  # the pre_sign_up hook vouched for the address


async def sign_up(
    services: Services,
    email: str,
    password: str,
    given: Mapping[str, Any],
    username: str | None,
    ip: str,
    locale: str,
) -> SignedUp:
    """A new account for `email` (normalised) with the pool's attributes from `given`
    (`locale` unless it names one). Raises a SignUpRefused (InvalidAttributes among them),
    TooManySignUps, or the directory's InvalidEmail, InvalidPassword, InvalidUsername,
    UsernameTaken."""
    pool = services.settings.user_pool
    domain = email.rpartition("@")[2]
    if pool.allowed_email_domains and domain not in pool.allowed_email_domains:
        raise EmailDomainRefused
    attributes, problem = check_attributes(pool, given)
    if problem:
        raise InvalidAttributes(problem)
    attributes.setdefault("locale", locale)
    limit = [(Limit("signup-ip", 20, 3600), ip)]
    try:
        await services.limiter.take(limit)  # every sign-up counts, taken before it is made
    except RateLimited as exc:
        raise TooManySignUps(exc.retry_after) from None
    auto_confirm = False
    if services.hooks.enabled("pre_sign_up"):
        # Asked for every sign-up, existing address or not: the answer reveals nothing.
        try:
            verdict = await services.hooks.call(
                "pre_sign_up", {"email": email, "username": username, "attributes": attributes}
            )
        except HookFailed:
            raise SignUpUnavailable from None
        if verdict.get("allow") is not True:
            message = verdict.get("message")
            raise SignUpDenied(str(message)[:200] if message else None)
        auto_confirm = verdict.get("auto_confirm") is True
    values = dict(attributes)
    try:
        user = await services.users.create(
            email,
            password,
            name=values.pop("name", None),
            email_verified=auto_confirm,
            attributes=values,
            username=username,
        )
    except UserExists:
        return SignedUp(None, existing=True)
    await services.audit.record("user.signed_up", user_id=user.user_id, ip=ip)
    if auto_confirm:  # the hook vouched for the address
        await _confirmed(services, user.user_id, user.email)
    return SignedUp(user, confirmed=auto_confirm)


async def confirm_email(services: Services, email: str, code: str) -> User:
    """The e-mail verification code of the account at `email`: verified (WrongVerificationCode
    for a wrong or expired code, or an unknown address: the same answer)."""
    user = await services.users.by_email(email) if email else None
    if user is None or not await services.codes.check(VERIFY, user.user_id, code):
        raise WrongVerificationCode
    user = await services.users.mark_email_verified(user.user_id)
    await services.audit.record("user.email_verified", user_id=user.user_id)
    await _confirmed(services, user.user_id, user.email)
    return user


async def confirm_email_link(services: Services, token: str) -> User:
    """The verification e-mail's link: its account's address is verified."""
    user_id = await services.codes.redeem_link(VERIFY, token)
    user = await services.users.get(user_id) if user_id else None
    if user is None:
        raise VerifyLinkExpired
    await services.users.mark_email_verified(user.user_id)
    await services.audit.record("user.email_verified", user_id=user.user_id, by="link")
    await _confirmed(services, user.user_id, user.email)
    return user


async def request_email_change(services: Services, user: User, email: str) -> str:
    """A signed-in user asks to move their account to `email`: the code to send there (the
    caller delivers it). The account keeps its current, verified address until the code comes
    back (`confirm_email_change`), so a mistyped or someone else's address changes nothing.
    Raises EmailDomainRefused outside `allowed_email_domains`, UserExists when another
    account has the address."""
    address = normalize_email(email)
    check_email_domain(services.settings.user_pool, address)
    owner = await services.users.by_email(address)
    if owner is not None and owner.user_id != user.user_id:
        raise UserExists(address)
    key = services.store.key("email-change", user.user_id)
    await services.store.put(key, address.encode(), ttl=services.codes.ttl)
    return await services.codes.issue(VERIFY_NEW_EMAIL, user.user_id)


def check_email_domain(pool: UserPoolSettings, address: str) -> None:
    """EmailDomainRefused outside `allowed_email_domains` (empty: any domain)."""
    if pool.allowed_email_domains and address.rpartition("@")[2] not in pool.allowed_email_domains:
        raise EmailDomainRefused


async def pending_email(services: Services, user: User) -> str | None:
    """The address `user` asked to move to and has not proven yet, if any."""
    raw = await services.store.get(services.store.key("email-change", user.user_id))
    return raw.decode() if raw is not None else None


async def confirm_email_change(services: Services, user: User, code: str) -> tuple[User, str]:
    """The code sent to the new address: the account moves there, verified. Returns the
    account and its previous address (to be told of the change). WrongVerificationCode for a
    wrong or expired code; UserExists if another account took the address meanwhile."""
    pending = await pending_email(services, user)
    if pending is None or not await services.codes.check(VERIFY_NEW_EMAIL, user.user_id, code):
        raise WrongVerificationCode
    previous = user.email
    changed = await services.users.change_email(user.user_id, pending)
    await services.store.delete(services.store.key("email-change", user.user_id))
    await services.audit.record("user.email_changed", user_id=user.user_id)
    return changed, previous


def phone_due(services: Services, user: User) -> bool:
    """Does this account's phone number still need proving before it signs in?"""
    pool = services.settings.user_pool
    return bool(pool.verify_phone and user.phone_number and not user.phone_number_verified)


async def confirm_phone(services: Services, user: User, code: str) -> User:
    """The text message's code: the account's phone number is verified."""
    if not user.phone_number or not await services.codes.check(VERIFY_PHONE, user.user_id, code):
        raise WrongVerificationCode
    verified = await services.users.mark_phone_verified(user.user_id, user.phone_number)
    if verified is None:
        raise SignInExpired
    await services.audit.record("user.phone_verified", user_id=user.user_id)
    return verified


def check_attributes(
    pool: UserPoolSettings, form: Mapping[str, Any]
) -> tuple[dict[str, str], str | None]:
    """The sign-up form's attribute values, and what is wrong with them (one message naming
    the first field at fault), per `user_pool.attributes`."""
    values: dict[str, str] = {}
    for attribute in pool.attributes:
        label = Phrase(attribute_label(attribute))  # "Name" reads "Nom" on a French page
        value = unicodedata.normalize("NFKC", str(form.get(attribute.name) or "")).strip()
        if not value:
            if attribute.required:
                return values, Phrase("%(label)s: this field is required.", label=label)
            continue
        if len(value) > attribute.max_length:
            return values, Phrase(
                "%(label)s: at most %(count)s characters.", label=label, count=attribute.max_length
            )
        if attribute.name == "phone_number":
            value = value.replace(" ", "").replace("-", "")
            if not E164.match(value):
                return values, Phrase(
                    "%(label)s: use the international format, e.g. +33612345678.", label=label
                )
        if attribute.pattern and not re.fullmatch(attribute.pattern, value):
            return values, Phrase("%(label)s: not in the expected format.", label=label)
        values[attribute.name] = value
    return values, None


def attribute_label(attribute: AttributeSettings) -> str:
    if attribute.label:
        return attribute.label
    return attribute.name.removeprefix("custom:").replace("_", " ").capitalize()


async def _confirmed(services: Services, user_id: str, email: str) -> None:
    """The post_confirmation hook: told, not asked (a failure is logged, nothing more)."""
    if services.hooks.enabled("post_confirmation"):
        try:
            await services.hooks.call("post_confirmation", {"user_id": user_id, "email": email})
        except HookFailed:
            pass  # logged by the hook client
