"""The steps of a sign-in, as the front ends see them, and the ways a transition can fail.

A transition of `gateway.login.machine` answers with the next step; each front end renders it
its own way — the hosted pages as HTML forms, an API as a JSON challenge:

- `NeedsPassword`: nothing proven yet: a password, a passkey or an IdP.
- `NeedsVerification`: the password was right, but the e-mail address was never proven.
- `NeedsNewPassword`: the password was right, but temporary: choose a new one.
- `SecondFactorDue`: the first factor is proven and a second one is due (the hosted pages
  go to `/login/mfa`; the step itself is `NeedsSecondFactor` or `NeedsEnrolment`).
- `NeedsSecondFactor`: a code (authenticator app, e-mail, recovery) or a passkey.
- `NeedsEnrolment`: a second factor is required and the account has none: set one up first.
- `Enrolled`: set up just now; its recovery codes are to be shown once, then continue.
- `Done`: proven; the front end completes the sign-in (`machine.complete`) and the flow's
  owner resumes (a code for a client, forward-auth's return, a device approved).

A refused transition raises a `LoginError`: each carries the hosted page's wording and status
(`title`, `message`, `status`); an API maps the class to its own error type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.connectors import UpstreamIdentity
from gateway.errors import GatewayError, PageError
from gateway.login.flows import Flow
from gateway.text import Phrase, wait_of
from gateway.users.directory import User


@dataclass(frozen=True)
class NeedsPassword:
    """Nothing proven yet: a first factor is due — a password, a passkey, or an IdP among
    `connectors` (what the front end offers)."""

    flow: Flow
    connectors: tuple[str, ...]


@dataclass(frozen=True)
class NeedsVerification:
    """Prove the e-mail address of `user` first (the flow now waits for its code)."""

    flow: Flow
    user: User


@dataclass(frozen=True)
class NeedsNewPassword:
    """The password was temporary (an administrator's reset): `user` must choose another."""

    flow: Flow
    user: User


@dataclass(frozen=True)
class SecondFactorDue:
    """A second factor is due; `machine.second_factor` says which step."""

    flow: Flow


@dataclass(frozen=True)
class NeedsSecondFactor:
    """Which second factors `subject` may use: `totp` (an authenticator app), `recovery`
    (a recovery code: any enrolment has them), `email` (a code sent to `email`), `sms` (a
    code sent to `phone`), `passkey`; and the one the account prefers (None: no preference)."""

    flow: Flow
    subject: str
    methods: frozenset[str]
    email: str
    phone: str = ""
    preferred: str | None = None


@dataclass(frozen=True)
class NeedsEnrolment:
    """Set up an authenticator app: `secret` (and `uri`, its otpauth:// form)."""

    flow: Flow
    subject: str
    secret: str
    uri: str


@dataclass(frozen=True)
class Enrolled:
    """A second factor was set up just now; `recovery_codes` are shown once (empty when
    already shown), then the sign-in continues."""

    flow: Flow
    recovery_codes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Done:
    """Signed in as `upstream` proves; `identity_id` when already resolved on the way."""

    flow: Flow
    upstream: UpstreamIdentity
    identity_id: str | None = None


SecondFactorStep = NeedsSecondFactor | NeedsEnrolment | Enrolled
# What a first factor (or a step right after it) leads to.
FirstFactorStep = NeedsVerification | NeedsNewPassword | SecondFactorDue | Done
Step = (
    NeedsPassword
    | NeedsVerification
    | NeedsNewPassword
    | SecondFactorDue
    | NeedsSecondFactor
    | NeedsEnrolment
    | Enrolled
    | Done
)


class LoginError(GatewayError):
    """A transition refused: the hosted page shows `title` / `message` with `status`."""

    title = "Sign-in failed"
    message = "Start again from the application."
    status = 400

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message

    def page(self) -> PageError:
        """The hosted error page that says so."""
        return PageError(self.title, self.message, self.status)


class FlowExpired(LoginError):
    """The flow is gone: expired, or already finished (a double submit, a replayed answer)."""

    title = "This sign-in has expired"
    message = "Go back to the application and start signing in again."


class IdpUnavailable(LoginError):
    """The upstream IdP cannot be asked to sign anyone in (its metadata is unreachable, the
    request cannot be signed): try later, or another way."""

    title = "Sign-in unavailable"
    status = 502


class SignInExpired(LoginError):
    """The flow has no proof for this step (it expired, or never got this far)."""

    title = "Sign-in expired"


class AccountUnavailable(LoginError):
    """The account went away or was disabled during the sign-in."""


class IncorrectPassword(LoginError):
    """Unknown user, wrong password or disabled account: one answer for all three."""

    message = "Incorrect email or password."
    status = 401


class TooManyAttempts(LoginError):
    """The per-account or per-IP limit of failed attempts is reached; the page says when its
    window ends (`template`, with `%(wait)s`), as Retry-After does."""

    template = "Too many attempts. Try again in %(wait)s."
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(Phrase(self.template, wait=wait_of(retry_after)))
        self.retry_after = retry_after


class TooManyCodes(TooManyAttempts):
    """Too many codes sent to one account (or from one address) in a while."""

    template = "Too many codes sent. Try again in %(wait)s."


class WrongCode(LoginError):
    """The second-factor code is wrong, expired, or was already used."""

    message = "That code is not right, or it was already used."
    status = 401


class WrongEnrolmentCode(WrongCode):
    """The first code from a newly set-up authenticator app is wrong (the secret stays)."""

    message = "That code is not right. Check the app and try again."
    status = 400


class PasskeyRefused(LoginError):
    """The passkey assertion did not verify for this account."""

    message = "That passkey could not be used. Try again."
    status = 401


class PasskeySignInRefused(PasskeyRefused):
    """A passkey offered on its own (no password) did not sign anyone in."""

    message = "That passkey could not sign you in."
