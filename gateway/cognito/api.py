"""The transport of the user-pool API: `POST /` with `X-Amz-Target:
AWSCognitoIdentityProviderService.<Operation>` and an AWS JSON 1.1 body, beside the Cognito
Identity API's target on the same path (`gateway.identity.cognito`: calls for it are handed
over). Whatever goes wrong, the answer is AWS JSON with `__type`, never a 500 page; a store
outage fails closed as InternalErrorException (503). Browser apps (Amplify) call it from their
pages: an answer names the page's origin only when the app client it calls allows it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from gateway.cognito import admin_ops, auth, mfa_ops, selfservice, webauthn_ops
from gateway.cognito.auth import Call
from gateway.cognito.challenges import Challenges
from gateway.cognito.choice import ChoiceSignIn
from gateway.cognito.srp_flow import SrpSignIn
from gateway.cognito.wire import INCORRECT, INVALID_SESSION, LIMIT, Body
from gateway.errors import CognitoError, Unavailable
from gateway.forwarded import client_address
from gateway.identity.cognito import (
    ROUTE_BODY_LIMIT,
    AwsJsonAnswer,
    CognitoApi,
    cors_headers,
    error_response,
    json_object,
    new_request_id,
    read_body,
    unavailable_response,
)
from gateway.identity.sigv4 import verify as verify_sigv4
from gateway.login.machine import Context
from gateway.login.steps import FlowExpired, LoginError, SignInExpired, TooManyAttempts

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("cognate.cognito_idp")

TARGET_PREFIX = "AWSCognitoIdentityProviderService."
Operation = Callable[["UserPoolApi", Call], Awaitable[Body]]

# Signed with an `admin_keys` entry (SigV4, service cognito-idp), as AWS requires of them.
ADMIN: dict[str, Operation] = {
    "AdminInitiateAuth": auth.admin_initiate_auth,
    "AdminRespondToAuthChallenge": auth.admin_respond_to_auth_challenge,
    **mfa_ops.ADMIN_OPERATIONS,
    **admin_ops.OPERATIONS,
}
OPERATIONS: dict[str, Operation] = {
    **ADMIN,
    "InitiateAuth": auth.initiate_auth,
    "RespondToAuthChallenge": auth.respond_to_auth_challenge,
    "GetTokensFromRefreshToken": auth.get_tokens_from_refresh_token,
    **selfservice.OPERATIONS,
    **mfa_ops.OPERATIONS,
    **webauthn_ops.OPERATIONS,
}


class UserPoolApi:
    """The user pool's public operations (each takes and returns an AWS JSON body)."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.pool_id = services.settings.user_pool_id
        self.pool_name = self.pool_id.split("_", 1)[1]  # what SRP's x is salted with
        self.challenges = Challenges(services.store, services.sealer)
        self.srp = SrpSignIn(self)
        self.choice = ChoiceSignIn(self)

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        body: Body = {}
        headers = request.headers
        operation = headers.get("x-amz-target", "").removeprefix(TARGET_PREFIX)
        try:
            raw = await read_body(request)
            if operation in ADMIN:
                settings = self.s.settings
                verify_sigv4(
                    request.method,
                    request.url.path,
                    request.url.query,
                    request.headers,
                    raw,
                    {k.access_key_id: k.secret_access_key for k in settings.admin_keys},
                    settings.region,
                    service="cognito-idp",
                )
            body = json_object(raw)
            response: Response = AwsJsonAnswer(
                await self._call(request, operation, body), request_id
            )
        except CognitoError as exc:
            response = error_response(exc, request_id)
        except LoginError as exc:  # a step refused where no operation said it more precisely
            response = error_response(login_refusal(exc), request_id)
        except Unavailable as exc:  # the store, an overload: fail closed, as AWS says it
            response = unavailable_response(exc, request_id)
        except Exception:  # never Starlette's HTML 500 page to an SDK
            log.exception("Cognito user-pool API call failed", extra={"request_id": request_id})
            error = CognitoError("InternalErrorException", "An internal error occurred.", 500)
            response = error_response(error, request_id)
        origin = headers.get("origin")  # a page's call: named only if its app client allows it
        client_id = await self._client_of(body) if origin else None
        allowed = self.s.clients.origin_allowed
        response.raw_headers += cors_headers(origin, lambda page: allowed(page, client_id))
        return response

    async def _client_of(self, body: Body) -> str | None:
        """The app client a call is about: that of the access token it carries (GetUser and
        the other signed-in operations; a ClientId beside it changes nothing), else its
        ClientId; None for neither (any registered client's origin may read the answer)."""
        token = body.get("AccessToken")
        if token is None:
            client_id = body.get("ClientId")
            return client_id if isinstance(client_id, str) else None
        if not isinstance(token, str) or len(token) > 100_000:
            return None
        try:  # remembered since the operation checked it (TokenService._checked)
            return (await self.s.tokens.verify_access_token(token)).client_id
        except Exception:  # not a token of ours, or the key set unreadable now: no client
            return None

    async def _call(self, request: Request, name: str, body: Body) -> Body:
        operation = OPERATIONS.get(name)
        if operation is None:
            target = request.headers.get("x-amz-target", "")
            raise CognitoError("UnknownOperationException", f"Unknown operation {target!r}.")

        def context() -> Context:
            address = client_address(self.s.settings, request)
            return Context(address, request.headers.get("user-agent"))

        return await operation(self, Call(body, context))


def login_refusal(exc: LoginError) -> CognitoError:
    """The login machine's refusals in Cognito's words (the operations map the ones they
    expect; this is the rest: a sign-in that expired meanwhile, too many codes...)."""
    if isinstance(exc, TooManyAttempts):
        return CognitoError("LimitExceededException", LIMIT)
    if isinstance(exc, (SignInExpired, FlowExpired)):
        return CognitoError("NotAuthorizedException", INVALID_SESSION)
    return CognitoError("NotAuthorizedException", INCORRECT)


class FrontDoor:
    """`POST /`: the user-pool API's calls by their target, the identity API's otherwise. An
    ASGI endpoint whose every answer, errors included, is AWS JSON (both handlers catch
    everything), so `gateway.direct` dispatches it before Starlette's router."""

    renders_own_errors = True

    def __init__(self, pools: UserPoolApi, identity: CognitoApi) -> None:
        self.pools = pools
        self.identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        if request.headers.get("x-amz-target", "").startswith(TARGET_PREFIX):
            response = await self.pools.handle(request)
        else:
            response = await self.identity.handle(request)
        await response(scope, receive, send)


def routes(services: Services, identity: CognitoApi) -> list[BaseRoute]:
    """`POST /` for both Cognito APIs, told apart by their target (`identity`: the identity
    API's operations), and `/cognito-idp` for this one."""
    pools = UserPoolApi(services)
    return [
        Route("/", FrontDoor(pools, identity), methods=["POST"], max_body_size=ROUTE_BODY_LIMIT),
        Route("/cognito-idp", pools.handle, methods=["POST"], max_body_size=ROUTE_BODY_LIMIT),
        Route("/cognito-idp", identity.preflight, methods=["OPTIONS"]),
    ]
