"""InitiateAuth and RespondToAuthChallenge: the login machine's steps as Cognito's challenges
(USER_SRP_AUTH's proof is `gateway.cognito.srp_flow`, USER_AUTH's choice
`gateway.cognito.choice`).

The hosted pages and this API are two front ends of one sign-in (`gateway.login.machine`):
a password is `machine.password`, a second factor `machine.submit_code`, an enrolment
`NeedsEnrolment` → MFA_SETUP; the same limits, audit and identity resolution apply. Each
challenge carries a single-use `Session` (`gateway.cognito.challenges`); a wrong MFA code keeps
it for another try (the machine's limits count the tries), anything else consumes it.

Users' existence is never revealed (Cognito's PreventUserExistenceErrors: ENABLED): unknown
users, wrong passwords and disabled accounts all get "Incorrect username or password.".
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gateway.clients import Client
from gateway.cognito import tokens
from gateway.cognito.challenges import Challenge
from gateway.cognito.wire import (
    ATTEMPTS_EXCEEDED,
    INVALID_SESSION,
    MFA_CODE_MISMATCH,
    NOT_CONFIRMED,
    Body,
    invalid_parameter,
    mapping,
    masked_email,
    masked_phone,
    not_authorized,
    secret_hash,
    string,
    unknown_client,
)
from gateway.connectors import PasswordConnector, local_connector_id
from gateway.crypto import constant_time_equals
from gateway.errors import CognitoError, StoreUnavailable
from gateway.grants import Grant
from gateway.login import machine, notify
from gateway.login.flows import Flow
from gateway.login.machine import Context
from gateway.login.progress import CodeSignIn, SecondFactor
from gateway.login.steps import (
    Done,
    Enrolled,
    FirstFactorStep,
    LoginError,
    NeedsEnrolment,
    NeedsNewPassword,
    NeedsSecondFactor,
    NeedsVerification,
    TooManyAttempts,
    WrongCode,
)
from gateway.store import Write
from gateway.users.directory import InvalidPassword, User
from gateway.users.mfa import MfaRecord
from gateway.users.search import user_status

if TYPE_CHECKING:
    from gateway.cognito.api import UserPoolApi

# The machine's second factors as this API's challenges, in the order it prefers them, and
# the ChallengeResponses field that carries each one's code.
MFA_CHALLENGES = {"totp": "SOFTWARE_TOKEN_MFA", "sms": "SMS_MFA", "email": "EMAIL_OTP"}
CODE_FIELDS = {
    "SOFTWARE_TOKEN_MFA": "SOFTWARE_TOKEN_MFA_CODE",
    "SMS_MFA": "SMS_MFA_CODE",
    "EMAIL_OTP": "EMAIL_OTP_CODE",
}


def mfa_settings(record: MfaRecord | None) -> Body:
    """GetUser's (and AdminGetUser's) UserMFASettingList and PreferredMfaSetting: the factors
    turned on, and the one a sign-in asks for (the only one, or the one preferred)."""
    names = [MFA_CHALLENGES[factor] for factor in (record.factors() if record else [])]
    if not names or record is None:
        return {}
    preferred = record.preferred or (record.factors()[0] if len(names) == 1 else None)
    answer: Body = {"UserMFASettingList": names}
    if preferred is not None:
        answer["PreferredMfaSetting"] = MFA_CHALLENGES[preferred]
    return answer


API_BROWSER = "cognito-idp-api"  # a flow's browser binding: no browser ever matches it
# AuthFlow → the explicit_auth_flows entry that allows it.
ALLOWS = {
    "USER_PASSWORD_AUTH": "ALLOW_USER_PASSWORD_AUTH",
    "USER_SRP_AUTH": "ALLOW_USER_SRP_AUTH",
    "REFRESH_TOKEN_AUTH": "ALLOW_REFRESH_TOKEN_AUTH",
    "REFRESH_TOKEN": "ALLOW_REFRESH_TOKEN_AUTH",
    "USER_AUTH": "ALLOW_USER_AUTH",
}


@dataclass(frozen=True)
class Call:
    """One API call: its body and who made it (for limits and audit; worked out from the
    request on first use — GetUser and most calls never ask)."""

    body: Body
    context: Callable[[], Context]

    @cached_property
    def ctx(self) -> Context:
        return self.context()


def app_client(api: UserPoolApi, body: Body) -> Client:
    client_id = string(body, "ClientId", high=128)
    client = api.s.clients.get(client_id)
    if client is None:
        raise unknown_client(client_id)
    return client


# AdminInitiateAuth's flows (a back end that holds admin keys signs in its users).
ADMIN_ALLOWS = {
    "ADMIN_USER_PASSWORD_AUTH": "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ADMIN_NO_SRP_AUTH": "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "REFRESH_TOKEN_AUTH": "ALLOW_REFRESH_TOKEN_AUTH",
    "REFRESH_TOKEN": "ALLOW_REFRESH_TOKEN_AUTH",
}


def this_pool(api: UserPoolApi, body: Body) -> None:
    """The admin operations name the pool: it must be this one."""
    pool_id = string(body, "UserPoolId", high=55)
    if pool_id != api.pool_id:
        raise CognitoError("ResourceNotFoundException", f"User pool {pool_id} does not exist.")


async def admin_initiate_auth(api: UserPoolApi, call: Call) -> Body:
    """AdminInitiateAuth (SigV4-signed with an admin key): ADMIN_USER_PASSWORD_AUTH, refresh."""
    this_pool(api, call.body)
    return await initiate_auth(api, call, ADMIN_ALLOWS)


async def admin_respond_to_auth_challenge(api: UserPoolApi, call: Call) -> Body:
    """AdminRespondToAuthChallenge: the challenges of an admin sign-in."""
    this_pool(api, call.body)
    return await respond_to_auth_challenge(api, call)


async def initiate_auth(api: UserPoolApi, call: Call, flows: dict[str, str] | None = None) -> Body:
    """InitiateAuth: USER_PASSWORD_AUTH, USER_SRP_AUTH, REFRESH_TOKEN(_AUTH)."""
    body = call.body
    flow_name = string(body, "AuthFlow", high=64)
    client = app_client(api, body)
    params = mapping(body, "AuthParameters")
    allowed = (flows or ALLOWS).get(flow_name)
    if allowed is None:
        raise invalid_parameter(f"{flow_name} is not a supported authentication flow")
    if allowed not in client.config.explicit_auth_flows:
        raise invalid_parameter(f"{flow_name} flow not enabled for this client")
    if flow_name in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN"):
        return await refresh(api, client, params)
    username = username_of(params.get("USERNAME", ""))
    secret_hash(client, username, params.get("SECRET_HASH"))
    if flow_name in ("USER_PASSWORD_AUTH", "ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"):
        return await password_sign_in(api, client, username, params.get("PASSWORD", ""), call.ctx)
    if flow_name == "USER_SRP_AUTH":
        return await api.srp.start(client, username, params.get("SRP_A", ""), call.ctx)
    return await api.choice.start(client, username, params, call.ctx)  # USER_AUTH


PASSWORD_VERIFIER_FIELDS = (
    "USERNAME",
    "PASSWORD_CLAIM_SECRET_BLOCK",
    "PASSWORD_CLAIM_SIGNATURE",
    "TIMESTAMP",
)
MAX_USERNAME = 254  # the longest e-mail address (RFC 5321); Cognito's usernames stop at 128


def username_of(name: str) -> str:
    """A USERNAME as a sign-in may use it: present, and no longer than any account's name
    (a megabyte of name would otherwise be sealed into a Session and written to the audit)."""
    if not name:
        raise invalid_parameter("Missing required parameter USERNAME")
    if len(name) > MAX_USERNAME:
        raise invalid_parameter(f"USERNAME is longer than {MAX_USERNAME} characters")
    return name


async def new_flow(api: UserPoolApi, client: Client, batch: list[Write] | None = None) -> Flow:
    """A login flow for an API sign-in (no browser, no redirect: it ends in tokens); with
    `batch`, its write joins the caller's."""
    return await api.s.flows.create(
        client_id=client.client_id,
        redirect_uri=f"{api.s.settings.issuer}/",
        browser=API_BROWSER,
        scope=tokens.API_SCOPE,
        batch=batch,
    )


async def password_sign_in(
    api: UserPoolApi, client: Client, username: str, password: str, ctx: Context
) -> Body:
    connector = api.s.connectors.get(local_connector_id(api.s.connectors) or "")
    if not isinstance(connector, PasswordConnector):
        raise invalid_parameter("This user pool has no local directory")
    flow = await new_flow(api, client)
    try:
        step = await machine.password(api.s, flow, connector, username, password, ctx)
    except TooManyAttempts:
        await discard(api, flow)
        raise not_authorized(ATTEMPTS_EXCEEDED) from None
    except LoginError:
        await discard(api, flow)
        raise await refusal(api, username) from None
    return await answer(api, client, step, ctx)


async def discard(api: UserPoolApi, flow: Flow) -> None:
    """The flow of a sign-in answered without a Session (refused, or told to confirm the
    account first), removed at once: a stream of wrong passwords, or of right ones for an
    unconfirmed account (each InitiateAuth starts a flow), leaves nothing behind for the
    flows' 15 minutes. Best effort: the answer stands even when the store cannot take the
    removal (the flow then expires on its own, and nothing can continue it: no Session names
    it)."""
    with contextlib.suppress(StoreUnavailable):
        await api.s.flows.take(flow.flow_id)


async def refusal(api: UserPoolApi, username: str) -> CognitoError:
    """Why a password (or its proof) was refused, in Cognito's words: an account whose
    password an administrator reset answers PasswordResetRequiredException, as Cognito does
    (its old password is gone: the owner must use the code they were sent); anything else is
    the one answer for unknown users, wrong passwords and disabled accounts."""
    user = await user_by_name(api, username)
    if user is not None and user.enabled and user_status(user) == "RESET_REQUIRED":
        return CognitoError(
            "PasswordResetRequiredException", "Password reset required for the user"
        )
    return not_authorized()


async def answer(
    api: UserPoolApi,
    client: Client,
    step: FirstFactorStep,
    ctx: Context,
    user: User | None = None,
) -> Body:
    """The API's answer to what the machine said: tokens, or the next challenge. `user`: the
    account as this request already read it, if it did (its tokens are made from it)."""
    if isinstance(step, NeedsVerification):
        # The API confirms by ConfirmSignUp, outside any flow: this one can never go on.
        await discard(api, step.flow)
        raise CognitoError("UserNotConfirmedException", NOT_CONFIRMED)
    if isinstance(step, NeedsNewPassword):  # a temporary password: Cognito's challenge
        profile = {
            "email": step.user.email,
            "email_verified": "true" if step.user.email_verified else "false",
        }
        return await challenge(
            api, "NEW_PASSWORD_REQUIRED", step.flow, client, step.user.user_id,
            {
                "USER_ID_FOR_SRP": step.user.user_id,
                "requiredAttributes": "[]",
                "userAttributes": json.dumps(profile),
            },
        )  # fmt: skip
    if isinstance(step, Done):
        return {"AuthenticationResult": await _tokens(api, client, step, ctx, user)}
    second = await machine.second_factor(api.s, step.flow, enrol_anew=True)
    username = _user_id(step.flow)
    if isinstance(second, NeedsEnrolment):
        return await challenge(
            api, "MFA_SETUP", step.flow, client, username,
            {"MFAS_CAN_SETUP": '["SOFTWARE_TOKEN_MFA"]'},
        )  # fmt: skip
    if isinstance(second, NeedsSecondFactor):
        offered = [m for m in MFA_CHALLENGES if m in second.methods]
        if second.preferred in offered or len(offered) == 1:
            return await mfa_challenge(api, client, second, second.preferred or offered[0], ctx)
        if offered:  # several and none preferred: the user picks (Amplify asks them)
            return await challenge(
                api, "SELECT_MFA_TYPE", step.flow, client, username,
                {"MFAS_CAN_CHOOSE": json.dumps([MFA_CHALLENGES[m] for m in offered])},
            )  # fmt: skip
        if "passkey" in second.methods:  # the account's only factor is a passkey
            return await api.choice.passkey_challenge(client, second)
    await discard(api, step.flow)
    raise CognitoError(
        "MFAMethodNotFoundException", "No second factor this API can ask for is set up."
    )


async def mfa_challenge(
    api: UserPoolApi, client: Client, step: NeedsSecondFactor, method: str, ctx: Context
) -> Body:
    """The challenge of one second factor; a code by e-mail or text message is sent now."""
    name = MFA_CHALLENGES[method]
    if method == "totp":
        return await challenge(api, name, step.flow, client, step.subject, {})
    sent = await machine.send_code(api.s, step, method, ctx)
    notify.code(api.s, None, sent)
    medium, destination = (
        ("SMS", masked_phone(sent.to)) if method == "sms" else ("EMAIL", masked_email(sent.to))
    )
    return await challenge(
        api, name, step.flow, client, step.subject,
        {"CODE_DELIVERY_DELIVERY_MEDIUM": medium, "CODE_DELIVERY_DESTINATION": destination},
    )  # fmt: skip


async def challenge(
    api: UserPoolApi,
    name: str,
    flow: Flow,
    client: Client,
    username: str,
    parameters: dict[str, str],
) -> Body:
    session = await api.challenges.issue(Challenge(name, flow.flow_id, client.client_id, username))
    return {
        "ChallengeName": name,
        "Session": session,
        "ChallengeParameters": {"USER_ID_FOR_SRP": username, **parameters}
        if name == "PASSWORD_VERIFIER"
        else parameters,
    }


async def respond_to_auth_challenge(api: UserPoolApi, call: Call) -> Body:
    """RespondToAuthChallenge: SOFTWARE_TOKEN_MFA, EMAIL_OTP, MFA_SETUP, PASSWORD_VERIFIER."""
    body = call.body
    name = string(body, "ChallengeName", high=64)
    client = app_client(api, body)
    responses = mapping(body, "ChallengeResponses")
    token = string(body, "Session", required=False, high=4096)
    if name == "PASSWORD_VERIFIER":
        # A malformed call is not a guess: refused before its Session is taken or a slot of
        # the limits counted, as Cognito refuses it (every SDK sends all four).
        for field in PASSWORD_VERIFIER_FIELDS:
            if not responses.get(field):
                raise invalid_parameter(f"Missing required parameter {field}")
        username_of(responses["USERNAME"])
    if not token and name == "PASSWORD_VERIFIER":  # the SECRET_BLOCK names it (srp_flow)
        token = responses.get("PASSWORD_CLAIM_SECRET_BLOCK", "")
    asked = await api.challenges.take(token) if token else None
    if asked is not None and (asked.name != name or asked.client_id != client.client_id):
        await api.challenges.restore(token, asked)  # a mistaken call does not end the sign-in
        raise not_authorized(INVALID_SESSION)
    if asked is None:
        raise not_authorized(INVALID_SESSION)
    secret_hash(client, responses.get("USERNAME", asked.username), responses.get("SECRET_HASH"))
    if name == "SELECT_CHALLENGE":  # USER_AUTH: the first factor chosen
        return await api.choice.select(client, asked, responses, call.ctx)
    if name == "PASSWORD_VERIFIER":  # reads the flow with the account
        return await api.srp.verify(client, asked, responses, call.ctx)
    flow = await api.s.flows.get(asked.flow_id)
    if flow is None:
        raise not_authorized(INVALID_SESSION)
    if name == "NEW_PASSWORD_REQUIRED":
        try:
            step_after = await machine.new_password(api.s, flow, responses.get("NEW_PASSWORD", ""))
        except InvalidPassword as exc:
            await api.challenges.restore(token, asked)  # another try with the same Session
            raise CognitoError(
                "InvalidPasswordException", f"Password did not conform with policy: {exc}"
            ) from None
        except LoginError:
            raise not_authorized(INVALID_SESSION) from None
        return await answer(api, client, step_after, call.ctx)
    if name == "EMAIL_OTP" and isinstance(flow.progress, CodeSignIn):  # USER_AUTH's first factor
        return await api.choice.email_code(client, token, asked, flow, responses, call.ctx)
    if name == "WEB_AUTHN":  # a passkey: USER_AUTH's first factor, or the only second one
        return await api.choice.passkey(client, flow, responses, call.ctx)
    step = await machine.second_factor(api.s, flow)
    if name == "SELECT_MFA_TYPE" and isinstance(step, NeedsSecondFactor):
        method = next((m for m, n in MFA_CHALLENGES.items() if n == responses.get("ANSWER")), "")
        if method not in step.methods:
            await api.challenges.restore(token, asked)
            raise invalid_parameter("The MFA type chosen is not one of MFAS_CAN_CHOOSE.")
        return await mfa_challenge(api, client, step, method, call.ctx)
    if name in CODE_FIELDS and isinstance(step, NeedsSecondFactor):
        field = CODE_FIELDS[name]
        try:
            done = await machine.submit_code(api.s, step, responses.get(field, "")[:32], call.ctx)
        except WrongCode:
            # Another try with the same Session, as Cognito allows; the machine counts them.
            await api.challenges.restore(token, asked)
            raise CognitoError("CodeMismatchException", MFA_CODE_MISMATCH) from None
        except TooManyAttempts:
            raise not_authorized(ATTEMPTS_EXCEEDED) from None
        assert isinstance(done, Done)  # noqa: S101 - an enrolled account's code
        return {"AuthenticationResult": await _tokens(api, client, done, call.ctx)}
    if name == "MFA_SETUP" and isinstance(step, Enrolled) and asked.verified:
        done = machine.continue_enrolled(step)
        return {"AuthenticationResult": await _tokens(api, client, done, call.ctx)}
    raise not_authorized(INVALID_SESSION)


async def _enrolment(api: UserPoolApi, call: Call) -> tuple[str, Challenge, NeedsEnrolment]:
    """The MFA_SETUP sign-in a Session names, consumed, with its enrolment step."""
    token = string(call.body, "Session", high=4096)
    asked = await api.challenges.take(token)
    flow = await api.s.flows.get(asked.flow_id) if asked and asked.name == "MFA_SETUP" else None
    step = await machine.second_factor(api.s, flow) if flow is not None else None
    if asked is None or not isinstance(step, NeedsEnrolment):
        raise not_authorized(INVALID_SESSION)
    return token, asked, step


async def associate_with_session(api: UserPoolApi, call: Call) -> Body:
    """AssociateSoftwareToken within an MFA_SETUP sign-in: the secret to enrol."""
    _, asked, step = await _enrolment(api, call)
    return {"SecretCode": step.secret, "Session": await api.challenges.again(asked)}


async def verify_with_session(api: UserPoolApi, call: Call) -> Body:
    """VerifySoftwareToken within an MFA_SETUP sign-in: the new app's first code; then the
    challenge is answered with the Session this returns."""
    token, asked, step = await _enrolment(api, call)
    code = string(call.body, "UserCode", low=6, high=6)
    try:
        await machine.submit_code(api.s, step, code, call.ctx)
    except WrongCode:
        await api.challenges.restore(token, asked)
        raise CognitoError(
            "EnableSoftwareTokenMFAException", "Code mismatch and fail enable Software Token MFA"
        ) from None
    except TooManyAttempts:
        raise not_authorized(ATTEMPTS_EXCEEDED) from None
    return {"Status": "SUCCESS", "Session": await api.challenges.again(asked, verified=True)}


async def refresh(api: UserPoolApi, client: Client, params: dict[str, str]) -> Body:
    """REFRESH_TOKEN_AUTH: new ID and access tokens for a live grant (the refresh token is
    not rotated, as Cognito's is not by default)."""
    grant, user = await _refreshable(api, client, params.get("REFRESH_TOKEN", ""))
    secret_hash(client, params.get("USERNAME", user.user_id), params.get("SECRET_HASH"))
    return {"AuthenticationResult": tokens.result(api.s, grant, user)}


async def get_tokens_from_refresh_token(api: UserPoolApi, call: Call) -> Body:
    """GetTokensFromRefreshToken: REFRESH_TOKEN_AUTH as an operation of its own (Amplify v6
    refreshes with it). A client with a secret sends the secret itself, not a SECRET_HASH."""
    body = call.body
    client = app_client(api, body)
    presented = string(body, "RefreshToken", high=100_000)
    if "ALLOW_REFRESH_TOKEN_AUTH" not in client.config.explicit_auth_flows:
        raise invalid_parameter("REFRESH_TOKEN_AUTH flow not enabled for this client")
    secret = client.config.client_secret
    if secret and not constant_time_equals(str(body.get("ClientSecret") or ""), secret):
        raise not_authorized(f"Unable to verify secret hash for client {client.client_id}")
    grant, user = await _refreshable(api, client, presented)
    return {"AuthenticationResult": tokens.result(api.s, grant, user)}


async def _refreshable(api: UserPoolApi, client: Client, presented: str) -> tuple[Grant, User]:
    """The live grant a refresh token of `client` belongs to, and its enabled user."""
    grants = api.s.grants
    gid = presented.split(".", 1)[0] if "." in presented else ""
    loaded = await grants.live_grant(gid, api.s.sessions, refreshing=True) if gid else None
    if loaded is None or grants.refresh_matches(loaded[1], presented) != "current":
        raise not_authorized("Invalid Refresh Token")
    grant = loaded[1]
    if grant.authorization.client_id != client.client_id:
        raise not_authorized("Invalid Refresh Token")
    user = await api.s.users.get(grant.authorization.subject or "")
    if user is None or not user.enabled:
        raise not_authorized("Invalid Refresh Token")
    return grant, user


async def _tokens(
    api: UserPoolApi, client: Client, done: Done, ctx: Context, user: User | None = None
) -> dict[str, Any]:
    batch: list[Write] = []  # the success's audit entry, the grant and its index: one trip
    identity_id = await machine.conclude(api.s, done, ctx, batch)
    if user is None or user.user_id != done.upstream.subject:
        user = await api.s.users.get(done.upstream.subject)
    if user is None:
        raise not_authorized()
    result = await tokens.sign_in(api.s, client, user, identity_id, done.upstream.amr, batch)
    await api.s.store.write_many(batch)
    return result


def _user_id(flow: Flow) -> str:
    progress = flow.progress
    return progress.subject if isinstance(progress, SecondFactor) else ""


async def user_by_name(api: UserPoolApi, username: str) -> User | None:
    """The account a USERNAME names: its e-mail, its username, or its id (Cognito's own
    username, as USER_ID_FOR_SRP returns it)."""
    return await api.s.users.by_login(username) or await api.s.users.get(username)
