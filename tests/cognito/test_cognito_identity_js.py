"""npm amazon-cognito-identity-js (pinned) under Node 20, its `CognitoUserPool` pointed at the
gateway with `endpoint`: sign up, confirm with the e-mailed code, `authenticateUser` (SRP),
TOTP set up and then asked for, refresh, and forgot password — the library's own calls, as an
app makes them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import GatewayServer, RedisServer, free_port, make_settings
from tests.mail import Mailbox, code_in, smtp_settings
from tests.npm import node_modules, run_node

POOL_ID = "eu-west-1_JsPool1"
PASSWORD = "correct horse battery"

# One action per run; the request (stdin) says which. Each prints one JSON answer.
SCRIPT = """
const C = require("amazon-cognito-identity-js");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const pool = new C.CognitoUserPool({
  UserPoolId: input.poolId, ClientId: input.clientId, endpoint: input.endpoint,
});
const user = () => new C.CognitoUser({ Username: input.email, Pool: pool });
const done = (value) => { process.stdout.write(JSON.stringify(value)); };
// RFC 6238, computed when the code is sent (a code computed before a slow sign-in could be
// a step late); `input.step` picks the previous (-1), current (0) or next (1) step, so that
// each sign-in of the test spends a different one (each counts once).
const base32 = (text) => {
  let bits = "";
  for (const c of text.replace(/=+$/, "")) {
    bits += "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".indexOf(c).toString(2).padStart(5, "0");
  }
  return Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
};
const totp = () => {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000) + input.step));
  const h = require("crypto").createHmac("sha1", base32(input.secret)).update(counter).digest();
  const code = (h.readUInt32BE(h[19] & 15) & 0x7fffffff) % 1000000;
  return String(code).padStart(6, "0");
};
const fail = (err) => { done({ error: err.code || err.name, message: err.message }); };
const details = () =>
  new C.AuthenticationDetails({ Username: input.email, Password: input.password });
const tokens = (session) => ({
  id: session.getIdToken().getJwtToken(),
  access: session.getAccessToken().getJwtToken(),
  refresh: session.getRefreshToken().getToken(),
});
const actions = {
  signUp() {
    pool.signUp(input.email, input.password,
      [new C.CognitoUserAttribute({ Name: "name", Value: "Jo" })], null,
      (err, result) => err ? fail(err)
        : done({ sub: result.userSub, confirmed: result.userConfirmed }));
  },
  confirm() {
    user().confirmRegistration(input.code, true,
      (err, result) => err ? fail(err) : done({ result }));
  },
  signIn() {
    const u = user();
    u.authenticateUser(details(), {
      onSuccess: (session) => done({ tokens: tokens(session) }),
      onFailure: fail,
      totpRequired: () => u.sendMFACode(totp(), {
        onSuccess: (session) => done({ tokens: tokens(session), mfa: true }),
        onFailure: fail,
      }, "SOFTWARE_TOKEN_MFA"),
      mfaSetup: () => u.associateSoftwareToken({
        associateSecretCode: (secret) => done({ setup: secret }),
        onFailure: fail,
      }),
    });
  },
  setUpTotp() {  // signed in with a password, the user turns on an authenticator app
    const u = user();
    u.authenticateUser(details(), {
      onFailure: fail,
      onSuccess: () => u.associateSoftwareToken({
        onFailure: fail,
        associateSecretCode: (secret) => done({ secret }),
      }),
    });
  },
  verifyTotp() {
    const u = user();
    u.authenticateUser(details(), {
      onFailure: fail,
      onSuccess: () => u.verifySoftwareToken(totp(), "phone", {
        onSuccess: (result) => done({ result }), onFailure: fail,
      }),
    });
  },
  refresh() {
    const u = user();
    u.refreshSession(new C.CognitoRefreshToken({ RefreshToken: input.refresh }),
      (err, session) => err ? fail(err) : done({ tokens: tokens(session) }));
  },
  forgot() {
    user().forgotPassword({ onSuccess: (data) => done({ data }), onFailure: fail,
      inputVerificationCode: (data) => done({ data }) });
  },
  confirmPassword() {
    user().confirmPassword(input.code, input.newPassword,
      { onSuccess: () => done({ ok: true }), onFailure: fail });
  },
};
actions[input.action]();
"""


@pytest.fixture(scope="module")
def modules() -> Path:
    return node_modules("amazon-cognito-identity-js", "6.3.21")


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer, mailbox: tuple[Mailbox, int]) -> Iterator[GatewayServer]:
    port = free_port()
    base = make_settings(port, redis_server.url)
    clients = [c.model_dump() for c in base.clients] + [
        {
            "client_id": "webapp",
            "token_endpoint_auth_method": "none",
            "grant_types": ["refresh_token"],
        }
    ]
    settings = make_settings(
        port,
        redis_server.url,
        clients=clients,
        email=smtp_settings(mailbox[1]),
        user_pool={"self_sign_up": True, "id": POOL_ID},
    )
    server = GatewayServer(settings).start()
    yield server
    server.stop()


def js(modules: Path, pool: GatewayServer, action: str, **fields: Any) -> Any:
    request = {"action": action, "poolId": POOL_ID, "clientId": "webapp", "endpoint": pool.url}
    return run_node(modules, SCRIPT, {**request, **fields})


async def test_the_library_signs_up_signs_in_with_srp_and_totp_refreshes_and_resets(
    modules: Path, pool: GatewayServer, mailbox: tuple[Mailbox, int]
) -> None:
    email = f"js{secrets.token_hex(4)}@example.com"
    signed_up = js(modules, pool, "signUp", email=email, password=PASSWORD)
    assert signed_up["confirmed"] is False and signed_up["sub"]
    code = code_in(await mailbox[0].next_for(email))
    wrong = js(modules, pool, "confirm", email=email, code="000000")
    assert wrong["error"] == "CodeMismatchException"
    assert js(modules, pool, "confirm", email=email, code=code) == {"result": "SUCCESS"}

    refused = js(modules, pool, "signIn", email=email, password="not the password")
    assert refused == {
        "error": "NotAuthorizedException",
        "message": "Incorrect username or password.",
    }
    signed_in = js(modules, pool, "signIn", email=email, password=PASSWORD)
    assert set(signed_in["tokens"]) == {"id", "access", "refresh"}

    secret = js(modules, pool, "setUpTotp", email=email, password=PASSWORD)["secret"]
    verified = js(
        modules, pool, "verifyTotp", email=email, password=PASSWORD, secret=secret, step=-1
    )
    assert verified == {"result": {"Status": "SUCCESS"}}
    with_mfa = js(modules, pool, "signIn", email=email, password=PASSWORD, secret=secret, step=0)
    assert with_mfa["mfa"] is True and with_mfa["tokens"]["access"]

    refreshed = js(modules, pool, "refresh", email=email, refresh=with_mfa["tokens"]["refresh"])
    assert refreshed["tokens"]["access"] != with_mfa["tokens"]["access"]

    assert js(modules, pool, "forgot", email=email)["data"]["CodeDeliveryDetails"]
    reset_code = code_in(await mailbox[0].next_for(email, 1))
    assert js(
        modules,
        pool,
        "confirmPassword",
        email=email,
        code=reset_code,
        newPassword="another good passphrase",
    ) == {"ok": True}
    again = js(
        modules,
        pool,
        "signIn",
        email=email,
        password="another good passphrase",
        secret=secret,
        step=1,
    )
    assert again["tokens"]["id"]
