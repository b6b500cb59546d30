"""What a pending sign-in has gathered so far: the typed state the login keeps on its flow.

A flow moves through these as the user signs in; each is a frozen dataclass with a `KIND` tag,
and `dump` / `load` serialise them explicitly (unknown kinds or fields are refused, so a record
written by another version reads as "this sign-in has expired", never as a half-understood one):

- `AtIdp`: sent to an upstream IdP; what its connector needs back at the callback.
- `NewPassword`: the password was right, but temporary: a new one is due first.
- `SecondFactor`: the first factor is proven (the proof is kept here, sealed with the flow);
  waiting for a second factor, or for its enrolment.
- `Verifying`: waiting for the code that proves the e-mail address (then maybe the phone).
- `Resetting`: a password reset waiting for its code.
- `CodeSignIn`: a passwordless sign-in waiting for the code sent by e-mail.

Nothing here decides anything: the transitions are in `gateway.login.machine`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from gateway.connectors import (
    OAuth2Pending,
    OidcPending,
    SamlPending,
    UpstreamIdentity,
    UpstreamPending,
)


@dataclass(frozen=True)
class AtIdp:
    """At an upstream IdP: its answer must come back to `connector` with `pending`'s state."""

    KIND: ClassVar[str] = "idp"
    connector: str
    pending: UpstreamPending


@dataclass(frozen=True)
class SecondFactor:
    """The first factor is proven (`proven`); a second one is due. `subject` owns the factors:
    a local account's user id, or a federated sign-in's identity id (`identity_id`, resolved
    once, here). `secret` is a TOTP secret being enrolled; `enrolled` says the enrolment is
    done and its recovery codes were shown, so only "continue" is left."""

    KIND: ClassVar[str] = "mfa"
    proven: UpstreamIdentity
    subject: str
    local: bool
    identity_id: str | None = None
    secret: str | None = None
    enrolled: bool = False


@dataclass(frozen=True)
class NewPassword:
    """The password was right but temporary: a new one is due before anything else."""

    KIND: ClassVar[str] = "new-password"
    proven: UpstreamIdentity


@dataclass(frozen=True)
class Verifying:
    """Waiting for the e-mail code of `email`; then (`phone_user`) for the phone's code."""

    KIND: ClassVar[str] = "verify"
    email: str
    phone_user: str | None = None


@dataclass(frozen=True)
class Resetting:
    """A password reset for `email`, waiting for its code."""

    KIND: ClassVar[str] = "reset"
    email: str


@dataclass(frozen=True)
class CodeSignIn:
    """A passwordless sign-in as `account` (what the user typed), waiting for the code sent
    to the address of `subject` ("" when no account could take one: the answer is the same,
    and no code will ever match). `counted`: what the login limits count, the id of the
    account `account` names whether or not it could take a code (so an unusable account's
    wrong codes and wrong passwords share one allowance, as a usable one's do), else
    `account`."""

    KIND: ClassVar[str] = "code-sign-in"
    account: str
    subject: str
    counted: str = ""


Progress = AtIdp | SecondFactor | NewPassword | Verifying | Resetting | CodeSignIn
T = TypeVar("T")

_PROGRESS: dict[str, type[Progress]] = {
    c.KIND: c for c in (AtIdp, SecondFactor, NewPassword, Verifying, Resetting, CodeSignIn)
}
_PENDING: dict[str, type[UpstreamPending]] = {
    "oidc": OidcPending,
    "oauth2": OAuth2Pending,
    "saml": SamlPending,
}


def dump(progress: Progress | None) -> dict[str, Any] | None:
    """`progress` as JSON-ready data, tagged with its kind."""
    if progress is None:
        return None
    data: dict[str, Any] = {"kind": progress.KIND}
    for f in fields(progress):
        value = getattr(progress, f.name)
        if isinstance(value, UpstreamIdentity):
            value = {g.name: getattr(value, g.name) for g in fields(value)}
        elif isinstance(value, OidcPending | OAuth2Pending | SamlPending):
            kind = next(k for k, c in _PENDING.items() if isinstance(value, c))
            value = {"kind": kind, **{g.name: getattr(value, g.name) for g in fields(value)}}
        data[f.name] = value
    return data


def load(data: dict[str, Any] | None) -> Progress | None:
    """The progress `dump` wrote; ValueError for anything else."""
    if data is None:
        return None
    values = dict(data)
    cls = _PROGRESS.get(str(values.pop("kind", "")))
    if cls is None:
        raise ValueError("unknown sign-in progress")
    if "proven" in values:
        values["proven"] = _exactly(UpstreamIdentity, values["proven"])
    if "pending" in values:
        pending = dict(values["pending"])
        kind = _PENDING.get(str(pending.pop("kind", "")))
        if kind is None:
            raise ValueError("unknown upstream sign-in")
        values["pending"] = _exactly(kind, pending)
    return _exactly(cls, values)


def _exactly(cls: type[T], values: dict[str, Any]) -> T:
    try:
        return cls(**values)
    except TypeError as exc:  # a missing or unknown field
        raise ValueError(f"malformed {cls.__name__}: {exc}") from None
