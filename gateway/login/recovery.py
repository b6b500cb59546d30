"""Forgot password, for every front end: ask for a code, then a new password with it.

The answer to "send me a code" is the same for existing and unknown accounts (a code is made
only for an account that exists, and the front end sends it in the background), requests are
limited per IP and per account, and a code is bound to one account and purpose, expires and
allows few attempts (`gateway.users.codes`). A new password ends every other session and
refresh token of the account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.login.machine import counted_as
from gateway.login.steps import LoginError, TooManyAttempts
from gateway.logout import end_local_user
from gateway.ratelimit import Limit, RateLimited
from gateway.users.directory import User, check_password_policy, normalize_email

if TYPE_CHECKING:
    from gateway.services import Services

RESET = "reset-password"  # the purpose of reset codes and links


class TooManyResets(TooManyAttempts):
    """Too many reset requests from this address, or for this account."""

    template = "Too many requests. Try again in %(wait)s."


class WrongResetCode(LoginError):
    """The reset code is wrong, expired or used up (or the account is unknown)."""

    message = "That code is not right, or it has expired."


class ResetLinkExpired(LoginError):
    """The reset link was already used, or has expired."""

    title = "Link expired"
    message = "This link was already used or has expired. Ask for a new one."


@dataclass(frozen=True)
class ResetCode:
    """A code (and a link token) for `user`, for the front end to deliver."""

    user: User
    code: str
    link_token: str


async def request_code(services: Services, login: str, ip: str) -> ResetCode | None:
    """A reset code for the account `login` names, when one exists and is enabled; None
    otherwise (the caller answers the same either way). The per-account limit counts the
    account, not the name (`counted_as`): its e-mail, username and id share one allowance, as
    at sign-in, or each way of naming it would be five more e-mails an hour to its owner."""
    user = await services.users.by_login(login)
    account = counted_as(user, normalize_email(login))
    limits = [(Limit("reset-ip", 20, 3600), ip), (Limit("reset-account", 5, 3600), account)]
    try:
        await services.limiter.take(limits)  # every request counts, taken before it is served
    except RateLimited as exc:
        raise TooManyResets(exc.retry_after) from None
    if user is None or not user.enabled:
        return None
    code = await services.codes.issue(RESET, user.user_id)
    token = await services.codes.issue_link(RESET, user.user_id)
    return ResetCode(user, code, token)


async def reset_with_code(services: Services, login: str, code: str, password: str) -> User:
    """Set a new password with a reset code. InvalidPassword (before the code is spent, so
    a weak choice can be retried), or WrongResetCode."""
    check_password_policy(password, services.users.policy)
    user = await services.users.by_login(login) if login else None
    if user is None or not await services.codes.check(RESET, user.user_id, code):
        raise WrongResetCode
    await _new_password(services, user, password)
    await services.audit.record("user.password_reset", user_id=user.user_id)
    return user


async def reset_with_link(services: Services, token: str, password: str) -> User:
    """Set a new password with the e-mailed link's token (spent only once the password passes
    the policy). InvalidPassword, or ResetLinkExpired."""
    check_password_policy(password, services.users.policy)
    user_id = await services.codes.redeem_link(RESET, token)
    user = await services.users.get(user_id) if user_id else None
    if user is None:
        raise ResetLinkExpired
    await _new_password(services, user, password)
    await services.audit.record("user.password_reset", user_id=user.user_id, by="link")
    return user


async def _new_password(services: Services, user: User, password: str) -> None:
    await services.users.set_password(user.user_id, password)
    await end_local_user(services, user.user_id)  # every other session and token ends
