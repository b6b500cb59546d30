"""The sign-in's transitions: (flow, input) → the next step, with limits, audit and identity
resolution done here, once, for every front end.

    step = await machine.password(services, flow, connector, email, password, ctx)
    # NeedsVerification | NeedsNewPassword | SecondFactorDue | Done; or a LoginError
    step = await machine.second_factor(services, flow)          # what the user must give
    step = await machine.submit_code(services, flow, code, ctx)  # Done | Enrolled
    session, cookie = await machine.complete(services, done, ctx, replaces, batch)

Every proof ends in `after_proof`: a second factor when one is due — a local account with one
(or any, when `user_pool.mfa` is required), a federated sign-in when `user_pool.federated_mfa`
says so (unless the IdP's own `amr` reports MFA), any sign-in to a client whose `access` policy
says `mfa: true`. Such a sign-in gets no session yet: what was proven is parked on the flow
(`progress.SecondFactor`, sealed, expiring with it), so a browser that passed the password but
not the second factor holds nothing that reaches authorize, token, forward-auth or the account
pages (SECURITY-TESTS D36). `complete` then starts a *new* session (fresh id: no fixation).

The factors of a local account belong to its user id; those of a federated sign-in to its
identity id (TOTP only: the gateway has no verified channel of its own to such a person).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gateway import amr
from gateway.connectors import PasswordConnector, UpstreamIdentity, local_connector_id
from gateway.login.flows import Flow
from gateway.login.identity import resolve_identity
from gateway.login.progress import CodeSignIn, NewPassword, SecondFactor, Verifying
from gateway.login.steps import (
    AccountUnavailable,
    Done,
    Enrolled,
    FirstFactorStep,
    FlowExpired,
    IncorrectPassword,
    NeedsEnrolment,
    NeedsNewPassword,
    NeedsPassword,
    NeedsSecondFactor,
    NeedsVerification,
    PasskeyRefused,
    PasskeySignInRefused,
    SecondFactorDue,
    SecondFactorStep,
    SignInExpired,
    TooManyAttempts,
    TooManyCodes,
    WrongCode,
    WrongEnrolmentCode,
)
from gateway.ratelimit import Attempt, Limit, RateLimited
from gateway.users.directory import User, normalize_email
from gateway.users.search import user_status

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from gateway.services import Services
    from gateway.sessions import Session
    from gateway.store import Write

# The purposes of codes (`gateway.users.codes`): second factors by e-mail and by text
# message, and a passwordless sign-in by e-mail (USER_AUTH's EMAIL_OTP).
EMAIL_CODE = "mfa-email"
SMS_CODE = "mfa-sms"
SIGN_IN_CODE = "sign-in-email"
CODE_PURPOSES = {"email": EMAIL_CODE, "sms": SMS_CODE}


@dataclass(frozen=True)
class Context:
    """What the front end knows of who is signing in (for limits and the audit trail)."""

    ip: str
    user_agent: str | None = None


@dataclass(frozen=True)
class CodeToSend:
    """A code for the front end to deliver (it knows the reader's language): by `channel`
    ("email" or "sms") to `to`; `template` is the message (gateway/users/templates)."""

    channel: str
    to: str
    code: str
    locale: str | None
    template: str = "mfa_code.txt"


# -- first factors ---------------------------------------------------------------------------


def first_step(services: Services, flow: Flow) -> NeedsPassword:
    """Where every sign-in starts: a first factor, by any configured connector."""
    return NeedsPassword(flow, tuple(services.connectors))


async def password(
    services: Services,
    flow: Flow,
    connector: PasswordConnector,
    email: str,
    secret: str,
    ctx: Context,
) -> FirstFactorStep:
    """A username (or e-mail) and password, checked by a password connector."""

    async def prove() -> UpstreamIdentity | None:
        return await connector.login(email, secret) if email and secret else None

    return await first_factor(
        services, flow, connector.id, connector.type == "local", email, prove, ctx
    )


async def first_factor(
    services: Services,
    flow: Flow,
    connector_id: str,
    local: bool,
    account: str,
    prove: Callable[[], Awaitable[UpstreamIdentity | None]],
    ctx: Context,
    limit_as: str | None = None,
) -> FirstFactorStep:
    """A password, or a proof of it (SRP): `prove` answers who it proves, or None. Each try
    takes its slot of the limits before any password work (so parallel tries cannot all pass a
    check) and keeps it only if it fails, the same for existing and
    unknown accounts (no enumeration through the limiter either); unknown users, wrong
    passwords and disabled accounts get one answer. `limit_as`: what the per-account limit
    counts, when the caller has already looked the account up (`limited_account`'s answer:
    the account's id, or for a name that names none the normalized name)."""
    account = normalize_email(account)
    config = services.settings.rate_limits
    if limit_as is None:
        limit_as = await limited_account(services, account) if local else account
    checks = [
        (Limit("login-account", config.login_per_account, config.window), limit_as),
        (Limit("login-ip", config.login_per_ip, config.window), ctx.ip),
    ]
    try:
        attempt = Attempt(await services.limiter.take(checks))
    except RateLimited as exc:
        # Counted every time; audited once per window (and replica): refusals are free to
        # send, and an entry each would grow the audit stream at an attacker's rate.
        await outcome(
            services,
            connector_id,
            "limited",
            audited=services.limiter.first_refusal(exc, "sign_in"),
            account=account,
            ip=ctx.ip,
        )
        raise TooManyAttempts(exc.retry_after) from None
    try:
        upstream = await prove()
        if upstream is None:
            attempt.failed()
            await outcome(services, connector_id, "failure", account=account, ip=ctx.ip)
            raise IncorrectPassword
    finally:
        await services.limiter.settle(attempt)
    if upstream.new_password_due:  # a temporary password: replaced before anything else
        # (an administrator's invitation, whose account they confirmed: Cognito's
        # FORCE_CHANGE_PASSWORD, which signs in to NEW_PASSWORD_REQUIRED, verified or not)
        user = await services.users.get(upstream.subject)
        if user is None:
            raise AccountUnavailable
        flow = await services.flows.save(
            flow, NewPassword(replace(upstream, new_password_due=False))
        )
        return NeedsNewPassword(flow, user)
    if (
        services.settings.user_pool.requires_verification
        and local
        and upstream.claims.get("email_verified") is not True
    ):
        # The password was right; a sign-up whose address was never proven proves it first
        # (an account an administrator made or confirmed is not a pending sign-up).
        user = await services.users.get(upstream.subject)
        if user is None:
            raise AccountUnavailable
        if user_status(user) == "UNCONFIRMED":
            address = normalize_email(str(upstream.claims.get("email")))
            flow = await services.flows.save(flow, Verifying(address))
            return NeedsVerification(flow, user)
    return await after_proof(services, flow, upstream)


async def new_password(services: Services, flow: Flow, password: str) -> SecondFactorDue | Done:
    """The new password of an account whose password was temporary (InvalidPassword when the
    policy refuses it); then on, as after any first factor."""
    progress = flow.progress
    if not isinstance(progress, NewPassword):
        raise SignInExpired
    user = await services.users.get(progress.proven.subject)
    if user is None or not user.enabled:
        raise AccountUnavailable
    await services.users.set_password(user.user_id, password)
    await services.audit.record("user.password_changed", user_id=user.user_id, by="sign-in")
    return await after_proof(services, flow, progress.proven)


async def passkey(
    services: Services, flow: Flow, credential: str, ctx: Context
) -> SecondFactorDue | Done:
    """A discoverable passkey signs in on its own (with user verification: two factors in
    one gesture, so no second factor is due)."""
    config = services.settings.rate_limits
    checks = [(Limit("login-ip", config.login_per_ip, config.window), ctx.ip)]
    attempt = await _take(services, checks)
    try:
        use = await services.passkeys.authenticate("login", flow.flow_id, credential, None)
        user = await services.users.get(use.user_id) if use else None
        if use is None or user is None or not user.enabled or not use.user_verified:
            attempt.failed()
            await mfa_outcome(services, "passkey", "failure", use.user_id if use else "unknown")
            raise PasskeySignInRefused
    finally:
        await services.limiter.settle(attempt)
    await mfa_outcome(services, "passkey", "success", user.user_id)
    return await after_proof(services, flow, local_upstream(services, user, amr.PASSWORDLESS))


async def send_sign_in_code(
    services: Services, flow: Flow, account: str, ctx: Context
) -> tuple[Flow, CodeToSend | None]:
    """A passwordless sign-in by e-mail (`user_pool.email_sign_in`): a code to the verified
    address of the account `account` names. The flow waits for it either way; for an
    unknown, disabled or unverified account nothing is sent and no code will match (the
    front end answers the same: existence is never told), and the limits count alike."""
    if not services.settings.user_pool.email_sign_in:
        raise SignInExpired
    account = normalize_email(account)
    user = await services.users.by_login(account)
    wait = await code_allowed(services, user.user_id if user else account, ctx.ip)
    if wait is not None:
        raise TooManyCodes(wait)
    usable = user is not None and user.enabled and user.email_verified
    flow = await services.flows.save(
        flow,
        CodeSignIn(
            account,
            user.user_id if user is not None and usable else "",
            user.user_id if user is not None else account,
        ),
    )
    if user is None or not usable:
        return flow, None
    code = await services.codes.issue(SIGN_IN_CODE, user.user_id)
    # Not the second factor's message: no password was given, so none can have leaked.
    return flow, CodeToSend("email", user.email, code, user.locale, "sign_in_code.txt")


async def sign_in_code(services: Services, flow: Flow, code: str, ctx: Context) -> FirstFactorStep:
    """The code `send_sign_in_code` sent: the first factor (WrongCode when it does not match;
    the login limits count the failures, per account and per IP, as for passwords). A
    second factor the account has is still asked — but not codes by e-mail: the mailbox
    was this proof, and an account whose only factor is codes by e-mail is signed in (its
    mailbox could reset the password anyway)."""
    progress = flow.progress
    if not isinstance(progress, CodeSignIn):
        raise SignInExpired
    config = services.settings.rate_limits
    checks = [
        (
            Limit("login-account", config.login_per_account, config.window),
            progress.counted or progress.account,  # as limited_account: the account's own id
        ),
        (Limit("login-ip", config.login_per_ip, config.window), ctx.ip),
    ]
    attempt = await _take(services, checks)
    local = local_connector_id(services.connectors) or "local"
    try:
        user = await services.users.get(progress.subject) if progress.subject else None
        if (
            user is None
            or not user.enabled
            or not await services.codes.check(SIGN_IN_CODE, user.user_id, code)
        ):
            attempt.failed()
            await outcome(
                services, local, "failure", account=progress.account, ip=ctx.ip, by="code"
            )
            raise WrongCode
    finally:
        await services.limiter.settle(attempt)
    await outcome(services, local, "success", account=progress.account, ip=ctx.ip, by="code")
    upstream = local_upstream(services, user, amr.SIGN_IN_CODE)
    if upstream.new_password_due:  # a code proves the mailbox, not the temporary password
        upstream = replace(upstream, new_password_due=False)
    step = await after_proof(services, flow, upstream)
    if isinstance(step, SecondFactorDue):
        record = await services.mfa.get(user.user_id)
        passkeys = services.passkeys.enabled and bool(await services.passkeys.list(user.user_id))
        if record is not None and record.factors() == ["email"] and not passkeys:
            return _proven(step.flow, _parked(step.flow), amr.CODE)
    return step


def local_upstream(services: Services, user: User, methods: list[str]) -> UpstreamIdentity:
    """What a sign-in to a local account proves (its claims as the directory has them)."""
    local = local_connector_id(services.connectors) or "local"
    claims = services.users.claims(user)
    return UpstreamIdentity(
        local, user.user_id, claims, amr=methods, new_password_due=user.must_change_password
    )


async def after_proof(
    services: Services, flow: Flow, upstream: UpstreamIdentity
) -> SecondFactorDue | Done:
    """A first factor is proven (a password, a passkey, an IdP's answer, a verification):
    on to the second factor when one is due, else done."""
    if flow.link_sid is not None or amr.passed_second_factor(upstream.amr):
        return Done(flow, upstream)
    local = _is_local(services, upstream.connector_id)
    pool = services.settings.user_pool
    policy = pool.mfa if local else pool.federated_mfa
    client = services.settings.client(flow.client_id)
    demanded = bool(client and client.demands_mfa)
    if policy == "off" and not demanded:
        return Done(flow, upstream)
    identity_id = None if local else await resolve_identity(services, upstream)
    subject = upstream.subject if identity_id is None else identity_id
    if policy != "required" and not demanded and not await _has_factor(services, subject, local):
        return Done(flow, upstream, identity_id)
    return await _park(services, flow, upstream, subject, local, identity_id)


async def step_up(services: Services, flow: Flow, session: Session) -> SecondFactorDue:
    """A signed-in session without a second factor, at a client that demands one: parked
    from the session, no password asked again."""
    upstream = UpstreamIdentity(
        connector_id=session.connector_id,
        subject=session.subject,
        claims=session.profile,
        amr=session.amr,
        tokens=session.upstream,
    )
    local = _is_local(services, session.connector_id)
    subject = session.subject if local else session.identity_id
    identity_id = None if local else session.identity_id
    return await _park(services, flow, upstream, subject, local, identity_id)


async def _park(
    services: Services,
    flow: Flow,
    upstream: UpstreamIdentity,
    subject: str,
    local: bool,
    identity_id: str | None,
) -> SecondFactorDue:
    progress = SecondFactor(proven=upstream, subject=subject, local=local, identity_id=identity_id)
    return SecondFactorDue(await services.flows.save(flow, progress))


# -- second factors --------------------------------------------------------------------------


async def second_factor(
    services: Services, flow: Flow, enrol_anew: bool = False
) -> SecondFactorStep:
    """The second-factor step of a parked flow. When the account has no factor (and one is
    required), enrolment: a new TOTP secret with `enrol_anew` (a fresh page), else the one
    being enrolled (a page shown again after a wrong code)."""
    parked = _parked(flow)
    email, phone = await _contact(services, parked)
    if parked.enrolled:  # enrolled just now; the recovery codes were shown
        return Enrolled(flow)
    record = await services.mfa.get(parked.subject)
    passkeys = parked.local and services.passkeys.enabled
    has_passkeys = passkeys and bool(await services.passkeys.list(parked.subject))
    if record is None and not has_passkeys:
        secret = parked.secret
        if enrol_anew or secret is None:
            secret = await services.mfa.begin(parked.subject)
            flow = await services.flows.save(flow, replace(parked, secret=secret))
        uri = services.mfa.provisioning_uri(secret, email or parked.subject)
        return NeedsEnrolment(flow, parked.subject, secret, uri)
    methods = set()
    if record is not None:  # every enrolment comes with recovery codes
        methods.add("recovery")
    if record is not None and record.totp_secret:
        methods.add("totp")
    if record is not None and record.email_otp and parked.local and _email_codes(services):
        methods.add("email")
    if record is not None and record.sms_otp and phone and services.settings.user_pool.sms_mfa:
        methods.add("sms")
    if amr.SIGN_IN_CODE[0] in parked.proven.amr:  # the mailbox proved the first factor
        methods.discard("email")
    if has_passkeys:
        methods.add("passkey")
    preferred = record.preferred if record is not None else None
    return NeedsSecondFactor(
        flow, parked.subject, frozenset(methods), email, phone,
        preferred if preferred in methods else None,
    )  # fmt: skip


async def send_code(
    services: Services, step: NeedsSecondFactor, channel: str, ctx: Context
) -> CodeToSend:
    """A second-factor code by e-mail or text message (`channel`: "email" or "sms", for
    accounts that turned that factor on); the front end delivers it (`notify.code`)."""
    if channel not in CODE_PURPOSES or channel not in step.methods:
        raise SignInExpired
    wait = await code_allowed(services, step.subject, ctx.ip)
    if wait is not None:
        raise TooManyCodes(wait)
    code = await services.codes.issue(CODE_PURPOSES[channel], step.subject)
    to = step.email if channel == "email" else step.phone
    return CodeToSend(channel, to, code, _parked(step.flow).proven.claims.get("locale"))


async def submit_code(
    services: Services, step: NeedsSecondFactor | NeedsEnrolment, code: str, ctx: Context
) -> Done | Enrolled:
    """A code: the first one of an authenticator app being enrolled (→ Enrolled, with its
    recovery codes), or one from the app, a recovery code, or a code sent by e-mail."""
    flow, subject = step.flow, step.subject
    parked = _parked(flow)
    checks = _second_factor_limits(services, subject, ctx)
    attempt = await _take(services, checks)
    try:
        if isinstance(step, NeedsEnrolment):
            codes = await services.mfa.confirm(subject, code)
            if codes is None:
                attempt.failed()
                await mfa_outcome(services, "totp", "failure", subject)
                raise WrongEnrolmentCode
            await mfa_outcome(services, "totp", "enrolled", subject)
            flow = await services.flows.save(flow, replace(parked, enrolled=True))
            return Enrolled(flow, codes)
        method: str | None = None
        if "recovery" in step.methods:  # any enrolment: the app's codes or a recovery code
            method = await services.mfa.verify(subject, code)
            # Checked and wrong: it stays counted even if the store fails before the codes
            # sent by e-mail or text can be checked too (a guess is never free).
            attempt.is_failure = method is None
        for channel, purpose in CODE_PURPOSES.items():
            if method is None and channel in step.methods:
                if await services.codes.check(purpose, subject, code):
                    method = channel
                    attempt.is_failure = False
                else:
                    attempt.is_failure = True
        if method is None:
            attempt.failed()
            await mfa_outcome(services, "code", "failure", subject)
            raise WrongCode
    finally:
        await services.limiter.settle(attempt)
    await mfa_outcome(services, method, "success", subject)
    return _proven(flow, parked, amr.CODE)


async def submit_passkey(
    services: Services, step: NeedsSecondFactor, credential: str, ctx: Context
) -> Done:
    """A passkey assertion as the second factor."""
    if "passkey" not in step.methods:
        raise SignInExpired
    flow, subject = step.flow, step.subject
    checks = _second_factor_limits(services, subject, ctx)
    attempt = await _take(services, checks)
    try:
        use = await services.passkeys.authenticate("mfa", flow.flow_id, credential, subject)
        if use is None:
            attempt.failed()
            await mfa_outcome(services, "passkey", "failure", subject)
            raise PasskeyRefused
    finally:
        await services.limiter.settle(attempt)
    await mfa_outcome(services, "passkey", "success", subject)
    return _proven(flow, _parked(flow), amr.PASSKEY)


def continue_enrolled(step: Enrolled) -> Done:
    """After the recovery codes of a new enrolment were shown: signed in."""
    return _proven(step.flow, _parked(step.flow), amr.CODE)


# -- the end ---------------------------------------------------------------------------------


async def complete(
    services: Services,
    done: Done,
    ctx: Context,
    replaces: str | None,
    batch: list[Write],
) -> tuple[Session, str]:
    """Consume the flow (once), resolve the identity (unless already known), and start a new
    session in place of `replaces` (the browser's old session cookie, if any). The session's
    and the audit's writes join `batch`, which the caller sends — with the resume's own
    (a code, a device approval) — before answering."""
    identity_id = await _consume(services, done)
    return await start_session(
        services, done.upstream, ctx, done.flow.client_id, replaces, batch, identity_id
    )


async def conclude(
    services: Services, done: Done, ctx: Context, batch: list[Write] | None = None
) -> str:
    """The end of a sign-in with no browser to hold a session (an API answering with tokens):
    the flow consumed once, the identity resolved, the success audited (with `batch`, among
    the caller's writes); its identity ID."""
    identity_id = await _consume(services, done)
    identity_id = identity_id or await resolve_identity(services, done.upstream)
    await outcome(
        services,
        done.upstream.connector_id,
        "success",
        batch=batch,
        identity_id=identity_id,
        client_id=done.flow.client_id,
        ip=ctx.ip,
    )
    return identity_id


async def _consume(services: Services, done: Done) -> str | None:
    """Take the flow (FlowExpired when another completion got there first) and look its
    login up, in one round trip; the identity ID when known."""
    flow, upstream = done.flow, done.upstream
    taken, owner = await services.store.read_many(
        [
            services.flows.taking(flow),
            services.identities.finding(upstream.connector_id, upstream.subject),
        ]
    )
    if taken is None:  # a double submit or a replayed callback already finished it
        raise FlowExpired
    return done.identity_id or services.identities.found(owner)


async def start_session(
    services: Services,
    upstream: UpstreamIdentity,
    ctx: Context,
    client_id: str | None,
    replaces: str | None,
    batch: list[Write] | None = None,
    identity_id: str | None = None,
) -> tuple[Session, str]:
    """Resolve the identity (unless the caller knows it), end the browser's old session and
    start a fresh one (new ID: no fixation). Also for sign-ins without a flow (a SAML IdP's
    unsolicited response)."""
    identity_id = identity_id or await resolve_identity(services, upstream)
    await outcome(
        services,
        upstream.connector_id,
        "success",
        batch=batch,
        identity_id=identity_id,
        client_id=client_id,
        ip=ctx.ip,
    )
    await services.sessions.end(replaces)
    return await services.sessions.create(
        identity_id=identity_id,
        connector_id=upstream.connector_id,
        subject=upstream.subject,
        amr=upstream.amr,
        profile=upstream.claims,
        upstream=upstream.tokens,
        device=ctx.user_agent,
        # A registered client gets tokens from this session right away (for logout).
        client_id=client_id if client_id and services.clients.get(client_id) else None,
        batch=batch,
    )


async def outcome(
    services: Services,
    connector_id: str,
    result: str,
    batch: list[Write] | None = None,
    audited: bool = True,
    **fields: Any,
) -> None:
    """Count and audit one sign-in attempt (result: success, failure, limited)."""
    services.metrics.sign_ins.labels(connector_id, result).inc()
    if audited:
        await services.audit.record(f"sign_in.{result}", batch, connector=connector_id, **fields)


async def limited_account(services: Services, identifier: str) -> str:
    """What the per-account login limit counts for a local sign-in: the account's id when the
    identifier names one, so its e-mail, its username and its id (each a way to name it) share
    one allowance instead of multiplying it; otherwise the identifier itself. (The one
    allowance means failures under one name lock the others out too, which is the point.)"""
    return counted_as(await services.users.by_login(identifier), identifier)


def counted_as(user: User | None, identifier: str) -> str:
    """`limited_account` for a caller that has looked `identifier` up already (`user`)."""
    return user.user_id if user is not None else identifier


async def code_allowed(services: Services, account: str, ip: str) -> int | None:
    """None when a sign-in may send `account` a code now (a second factor by e-mail or text,
    a passwordless code); else the seconds to wait. Each sign-in that sends one is a sign-in
    attempt, so the login limits (`rate_limits`, per account and per IP) bound them, counted
    apart from failed passwords: a user who signs in every few minutes is never locked out
    by a "resend" allowance, and no one can make the gateway mail or text an account without
    end."""
    config = services.settings.rate_limits
    limits = [
        (Limit("code-account", config.login_per_account, config.window), account),
        (Limit("code-ip", config.login_per_ip, config.window), ip),
    ]
    try:
        await services.limiter.take(limits)  # each send counts, taken before it is sent
    except RateLimited as exc:
        return exc.retry_after
    return None


async def resend_allowed(services: Services, account: str, ip: str) -> int | None:
    """None when another code may be sent to `account` now; else the seconds to wait."""
    pool = services.settings.user_pool
    limits = [
        (Limit("resend-account", pool.resend_per_account, pool.code_ttl), account),
        (Limit("resend-ip", 20, 3600), ip),
    ]
    try:
        await services.limiter.take(limits)  # each send counts, taken before it is sent
    except RateLimited as exc:
        return exc.retry_after
    return None


# -- helpers ---------------------------------------------------------------------------------


def _parked(flow: Flow) -> SecondFactor:
    if not isinstance(flow.progress, SecondFactor) or not flow.progress.subject:
        raise SignInExpired
    return flow.progress


async def _contact(services: Services, parked: SecondFactor) -> tuple[str, str]:
    """Where codes go: the account's address and its *verified* number ("" when it has
    none); the account must still be usable."""
    if not parked.local:
        return str(parked.proven.claims.get("email") or ""), ""
    user = await services.users.get(parked.subject)
    if user is None or not user.enabled:
        raise AccountUnavailable
    phone = user.phone_number if user.phone_number_verified and user.phone_number else ""
    return user.email, phone


def _proven(flow: Flow, parked: SecondFactor, extra: list[str]) -> Done:
    proven = parked.proven
    upstream = replace(proven, amr=[*proven.amr, *extra])
    return Done(flow, upstream, parked.identity_id)


def _is_local(services: Services, connector_id: str) -> bool:
    return connector_id == local_connector_id(services.connectors)


def _email_codes(services: Services) -> bool:
    return services.settings.user_pool.email_mfa


async def _has_factor(services: Services, subject: str, local: bool) -> bool:
    if await services.mfa.get(subject) is not None:
        return True
    return local and services.passkeys.enabled and bool(await services.passkeys.list(subject))


def _second_factor_limits(
    services: Services, subject: str, ctx: Context
) -> list[tuple[Limit, str]]:
    config = services.settings.rate_limits
    return [
        (Limit("mfa-account", config.login_per_account, config.window), subject),
        (Limit("login-ip", config.login_per_ip, config.window), ctx.ip),
    ]


async def _take(services: Services, checks: list[tuple[Limit, str]]) -> Attempt:
    """This attempt's slots of the limits, taken before it is checked (`settle` it after);
    TooManyAttempts when there is none left."""
    try:
        return Attempt(await services.limiter.take(checks))
    except RateLimited as exc:
        raise TooManyAttempts(exc.retry_after) from None


async def mfa_outcome(services: Services, method: str, result: str, user_id: str) -> None:
    services.metrics.mfa.labels(method, result).inc()
    await services.audit.record(f"mfa.{result}", method=method, user_id=user_id)
