"""The login machine driven directly, as any front end drives it: no HTTP, no pages — the
steps it answers, the errors it raises, and what it writes (SECURITY-TESTS D36: nothing
signs in before the second factor is done)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pyotp
import pytest

from gateway.connectors import PasswordConnector, UpstreamIdentity
from gateway.errors import StoreUnavailable
from gateway.login import machine
from gateway.login.flows import Flow
from gateway.login.machine import Context
from gateway.login.progress import SecondFactor
from gateway.login.steps import (
    Done,
    Enrolled,
    FlowExpired,
    IncorrectPassword,
    NeedsEnrolment,
    NeedsNewPassword,
    NeedsSecondFactor,
    SecondFactorDue,
    SignInExpired,
    TooManyAttempts,
    WrongCode,
    WrongEnrolmentCode,
)
from gateway.services import Services, build_services
from gateway.store import Write
from gateway.users.directory import InvalidPassword
from tests.helpers import RedisServer, fast_hasher, free_port, make_settings

CTX = Context(ip="192.0.2.7", user_agent="test")
PASSWORD = "correct horse battery"


async def services_for(redis_server: RedisServer, **overrides: Any) -> Services:
    settings = make_settings(free_port(), redis_server.url, **overrides)
    return build_services(settings, hasher=fast_hasher())


@pytest.fixture
async def services(redis_server: RedisServer) -> AsyncIterator[Services]:
    s = await services_for(redis_server)
    yield s
    await s.store.close()


async def new_flow(services: Services, client_id: str = "web") -> Flow:
    return await services.flows.create(
        client_id=client_id,
        redirect_uri="https://app.example.com/cb",
        browser=services.flows.browser_binding("browser-secret"),
        scope=["openid"],
    )


def local(services: Services) -> PasswordConnector:
    connector = services.connectors["local"]
    assert isinstance(connector, PasswordConnector)
    return connector


async def test_a_password_alone_is_done_and_completes_once(services: Services) -> None:
    user = await services.users.create("ann@example.com", PASSWORD, email_verified=True)
    flow = await new_flow(services)
    step = await machine.password(services, flow, local(services), "ann@example.com", PASSWORD, CTX)
    assert isinstance(step, Done) and step.upstream.subject == user.user_id
    assert step.upstream.amr == ["pwd"]
    batch: list[Write] = []
    session, cookie = await machine.complete(services, step, CTX, None, batch)
    await services.store.write_many(batch)
    assert await services.sessions.load(cookie) == session
    with pytest.raises(FlowExpired):  # the flow is consumed: a second completion is refused
        await machine.complete(services, step, CTX, None, [])


async def test_wrong_and_unknown_get_one_answer_and_count_towards_the_limit(
    redis_server: RedisServer,
) -> None:
    services = await services_for(redis_server, rate_limits={"login_per_account": 2})
    try:
        await services.users.create("bo@example.com", PASSWORD, email_verified=True)
        flow = await new_flow(services)
        for email in ("bo@example.com", "nobody@example.com"):
            with pytest.raises(IncorrectPassword) as wrong:
                await machine.password(services, flow, local(services), email, "nope", CTX)
            assert wrong.value.message == "Incorrect email or password."
        with pytest.raises(IncorrectPassword):
            await machine.password(services, flow, local(services), "bo@example.com", "x", CTX)
        with pytest.raises(TooManyAttempts) as limited:  # even the right password, now
            await machine.password(services, flow, local(services), "bo@example.com", PASSWORD, CTX)
        assert limited.value.retry_after > 0
    finally:
        await services.store.close()


async def test_an_account_that_cannot_take_codes_is_counted_as_any_account(
    redis_server: RedisServer,
) -> None:
    """Passwordless sign-in codes (`email_sign_in`): an account that cannot take one (disabled,
    or its address unverified) gets no code, and its wrong codes count where its wrong
    passwords do, its id — so after the limit, every name answers TooManyAttempts, exactly as
    a usable account and as an unknown name do: the limiter tells none of them apart."""
    services = await services_for(
        redis_server,
        rate_limits={"login_per_account": 3, "login_per_ip": 100},
        user_pool={"email_sign_in": True},
    )
    try:
        await services.users.create("gu@example.com", PASSWORD, email_verified=True)
        await services.users.create("gw@example.com", PASSWORD, email_verified=False)
        disabled = await services.users.create("gd@example.com", PASSWORD, email_verified=True)
        await services.users.set_status(disabled.user_id, "disabled")
        for name in ("gu@example.com", "gw@example.com", "gd@example.com", "ghost@example.com"):
            flow = await new_flow(services)
            flow, sent = await machine.send_sign_in_code(services, flow, name, CTX)
            assert (sent is not None) == (name == "gu@example.com")
            for _ in range(3):
                with pytest.raises(WrongCode):
                    await machine.sign_in_code(services, flow, "000000", CTX)
            with pytest.raises(TooManyAttempts):  # the password counter is the same one
                await machine.password(services, flow, local(services), name, "nope", CTX)
    finally:
        await services.store.close()


async def test_successes_give_their_slot_back(redis_server: RedisServer) -> None:
    """A slot is taken before each password check; a right password gives it back, so signing
    in more often than the limit is never a lock-out."""
    services = await services_for(redis_server, rate_limits={"login_per_account": 2})
    try:
        await services.users.create("fi@example.com", PASSWORD, email_verified=True)
        for _ in range(4):
            flow = await new_flow(services)
            step = await machine.password(
                services, flow, local(services), "fi@example.com", PASSWORD, CTX
            )
            assert isinstance(step, Done)
    finally:
        await services.store.close()


async def test_every_name_of_an_account_shares_its_one_allowance(
    redis_server: RedisServer,
) -> None:
    """E-mail, username and account id each name the account: failures under any of them
    count against the same per-account limit, so three names are not three allowances. An
    unknown name keeps an allowance of its own (there is no account to protect)."""
    services = await services_for(
        redis_server,
        rate_limits={"login_per_account": 3, "login_per_ip": 100},
        user_pool={"usernames": True},
    )
    try:
        user = await services.users.create(
            "cy@example.com", PASSWORD, email_verified=True, username="cyd"
        )
        flow = await new_flow(services)
        for name in ("cy@example.com", "cyd", user.user_id):
            with pytest.raises(IncorrectPassword):
                await machine.password(services, flow, local(services), name, "nope", CTX)
        for name in ("cy@example.com", "CYD", user.user_id.upper()):
            with pytest.raises(TooManyAttempts):  # the right password, under every name
                await machine.password(services, flow, local(services), name, PASSWORD, CTX)
        for _ in range(3):
            with pytest.raises(IncorrectPassword):
                await machine.password(services, flow, local(services), "nobody", "x", CTX)
        with pytest.raises(TooManyAttempts):
            await machine.password(services, flow, local(services), "nobody", "x", CTX)
    finally:
        await services.store.close()


async def test_a_required_second_factor_is_enrolled_before_anything_signs_in(
    redis_server: RedisServer,
) -> None:
    services = await services_for(redis_server, user_pool={"mfa": "required"})
    try:
        user = await services.users.create("cy@example.com", PASSWORD, email_verified=True)
        flow = await new_flow(services)
        due = await machine.password(
            services, flow, local(services), "cy@example.com", PASSWORD, CTX
        )
        assert isinstance(due, SecondFactorDue)
        assert isinstance(due.flow.progress, SecondFactor)
        step = await machine.second_factor(services, due.flow, enrol_anew=True)
        assert isinstance(step, NeedsEnrolment) and step.uri.startswith("otpauth://")
        # D36: the password alone holds nothing that signs in.
        assert await services.sessions.of_identity(await identity_of(services, user.user_id)) == []
        with pytest.raises(WrongEnrolmentCode):
            await machine.submit_code(services, step, "000000", CTX)
        again = await machine.second_factor(services, step.flow)
        assert isinstance(again, NeedsEnrolment) and again.secret == step.secret  # kept
        enrolled = await machine.submit_code(services, again, pyotp.TOTP(again.secret).now(), CTX)
        assert isinstance(enrolled, Enrolled) and len(enrolled.recovery_codes) >= 8
        shown = await machine.second_factor(services, enrolled.flow)
        assert isinstance(shown, Enrolled) and shown.recovery_codes == []
        done = machine.continue_enrolled(shown)
        assert set(done.upstream.amr) == {"pwd", "otp", "mfa"}
        session, _ = await machine.complete(services, done, CTX, None, batch := [])
        await services.store.write_many(batch)
        assert session.amr == done.upstream.amr
    finally:
        await services.store.close()


async def test_an_enrolled_account_is_asked_for_a_code_and_a_wrong_one_is_refused(
    services: Services,
) -> None:
    user = await services.users.create("di@example.com", PASSWORD, email_verified=True)
    secret = await services.mfa.begin(user.user_id)
    codes = await services.mfa.confirm(user.user_id, pyotp.TOTP(secret).now())
    assert codes
    flow = await new_flow(services)
    due = await machine.password(services, flow, local(services), "di@example.com", PASSWORD, CTX)
    assert isinstance(due, SecondFactorDue)
    step = await machine.second_factor(services, due.flow)
    assert isinstance(step, NeedsSecondFactor)
    assert {"totp", "recovery"} <= step.methods and "passkey" not in step.methods
    with pytest.raises(WrongCode):
        await machine.submit_code(services, step, "123456", CTX)
    done = await machine.submit_code(services, step, codes[0], CTX)  # a recovery code
    assert isinstance(done, Done) and "mfa" in done.upstream.amr


async def test_a_code_checked_and_wrong_stays_counted_if_the_next_check_fails(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A code is tried against the app's codes, then against the one sent by e-mail: when the
    store fails between the two (a 503), the first check was still a guess, and keeps its slot.
    A failure before any check keeps none."""
    user = await services.users.create("cy@example.com", PASSWORD, email_verified=True)
    secret = await services.mfa.begin(user.user_id)
    assert await services.mfa.confirm(user.user_id, pyotp.TOTP(secret).now())
    flow = await new_flow(services)
    due = await machine.password(services, flow, local(services), "cy@example.com", PASSWORD, CTX)
    assert isinstance(due, SecondFactorDue)
    step = await machine.second_factor(services, due.flow)
    assert isinstance(step, NeedsSecondFactor)
    step = replace(step, methods=step.methods | {"email"})  # the account takes e-mailed codes too

    async def down(*_: Any) -> bool:
        raise StoreUnavailable("the store is down")

    limit = machine._second_factor_limits(services, user.user_id, CTX)[0][0]
    monkeypatch.setattr(services.codes, "check", down)
    with pytest.raises(StoreUnavailable):
        await machine.submit_code(services, step, "123456", CTX)
    assert await services.limiter.count(limit, user.user_id) == 1
    monkeypatch.setattr(services.mfa, "verify", down)
    with pytest.raises(StoreUnavailable):
        await machine.submit_code(services, step, "123456", CTX)
    assert await services.limiter.count(limit, user.user_id) == 1  # nothing checked: no guess


async def test_parallel_wrong_codes_get_the_limit_and_no_more(redis_server: RedisServer) -> None:
    """Twenty wrong second-factor codes at once: each takes its slot of the limit before it is
    checked, so three are checked (the limit) and the rest refused unchecked; the right code
    is refused too until the window ends. A success gives its slot back."""
    import asyncio

    services = await services_for(
        redis_server, rate_limits={"login_per_account": 3, "login_per_ip": 100}
    )
    try:
        user = await services.users.create("ed@example.com", PASSWORD, email_verified=True)
        secret = await services.mfa.begin(user.user_id)
        assert await services.mfa.confirm(user.user_id, pyotp.TOTP(secret).now())
        flow = await new_flow(services)
        due = await machine.password(
            services, flow, local(services), "ed@example.com", PASSWORD, CTX
        )
        assert isinstance(due, SecondFactorDue)
        step = await machine.second_factor(services, due.flow)
        assert isinstance(step, NeedsSecondFactor)
        wrong = str((int(pyotp.TOTP(secret).now()) + 1) % 1_000_000).zfill(6)
        answers = await asyncio.gather(
            *(machine.submit_code(services, step, wrong, CTX) for _ in range(20)),
            return_exceptions=True,
        )
        kinds = [type(a).__name__ for a in answers]
        assert kinds.count("WrongCode") == 3 and kinds.count("TooManyAttempts") == 17, kinds
        with pytest.raises(TooManyAttempts):
            await machine.submit_code(services, step, pyotp.TOTP(secret).now(), CTX)
    finally:
        await services.store.close()


async def test_steps_of_a_flow_that_never_got_there_are_refused(services: Services) -> None:
    flow = await new_flow(services)
    with pytest.raises(SignInExpired):
        await machine.second_factor(services, flow)


async def test_a_federated_identity_is_resolved_once_and_carried_to_the_session(
    redis_server: RedisServer,
) -> None:
    services = await services_for(redis_server, user_pool={"federated_mfa": "required"})
    try:
        flow = await new_flow(services)
        upstream = UpstreamIdentity("idp", "remote-1", {"email": "e@example.com"}, amr=["fed"])
        due = await machine.after_proof(services, flow, upstream)
        assert isinstance(due, SecondFactorDue) and isinstance(due.flow.progress, SecondFactor)
        identity_id = due.flow.progress.identity_id
        assert identity_id == await services.identities.find("idp", "remote-1")
        assert due.flow.progress.subject == identity_id  # its factors belong to the identity
        step = await machine.second_factor(services, due.flow, enrol_anew=True)
        assert isinstance(step, NeedsEnrolment)
        enrolled = await machine.submit_code(services, step, pyotp.TOTP(step.secret).now(), CTX)
        assert isinstance(enrolled, Enrolled)
        done = machine.continue_enrolled(enrolled)
        assert done.identity_id == identity_id
        session, _ = await machine.complete(services, done, CTX, None, [])
        assert session.identity_id == identity_id
    finally:
        await services.store.close()


async def identity_of(services: Services, user_id: str) -> str:
    return await services.identities.resolve("local", user_id)


async def test_a_temporary_password_must_be_replaced_before_anything_else(
    services: Services,
) -> None:
    user = await services.users.create("te@example.com", PASSWORD, email_verified=True)
    await services.users.set_password(user.user_id, "temporary passphrase 1", temporary=True)
    flow = await new_flow(services)
    step = await machine.password(
        services, flow, local(services), "te@example.com", "temporary passphrase 1", CTX
    )
    assert isinstance(step, NeedsNewPassword)  # no session, no code: a new password first
    with pytest.raises(InvalidPassword):
        await machine.new_password(services, step.flow, "short")
    done = await machine.new_password(services, step.flow, "my own passphrase")
    assert isinstance(done, Done)
    renewed = await services.users.get(user.user_id)
    assert renewed is not None and not renewed.must_change_password
    assert await services.users.authenticate("te@example.com", "my own passphrase")
    with pytest.raises(SignInExpired):  # a flow that was never asked for one
        await machine.new_password(services, await new_flow(services), "my own passphrase")


async def test_linking_is_confirmed_then_bound_to_the_session_that_asked(
    services: Services,
) -> None:
    from gateway.login import identity

    asking, _ = await services.sessions.create(
        identity_id=await services.identities.resolve("local", "u-link"),
        connector_id="local",
        subject="u-link",
        amr=["pwd"],
        profile={"email": "l@example.com"},
    )
    other, _ = await services.sessions.create(
        identity_id=await services.identities.resolve("local", "u-other"),
        connector_id="local",
        subject="u-other",
        amr=["pwd"],
        profile={},
    )
    step = identity.ask_to_link(asking, "idp")
    assert step.email == "l@example.com" and step.connector_id == "idp"
    flow = await identity.confirm_link(services, step, "browser-secret")
    assert flow.link_sid == asking.sid
    upstream = UpstreamIdentity("idp", "remote-9", {}, amr=["fed"])
    with pytest.raises(identity.LinkRefused):  # another session cannot use the link flow
        await identity.link(services, flow, upstream, other, CTX.ip)
    flow = await identity.confirm_link(services, step, "browser-secret")
    await identity.link(services, flow, upstream, asking, CTX.ip)
    assert await services.identities.find("idp", "remote-9") == asking.identity_id


async def test_every_sign_in_starts_with_a_first_factor(services: Services) -> None:
    flow = await new_flow(services)
    step = machine.first_step(services, flow)
    assert step.flow == flow and "local" in step.connectors
