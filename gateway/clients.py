"""Registered clients (from settings) and client authentication at the token, revocation and
introspection endpoints (client_secret_basic, client_secret_post, none).

Secrets are kept only as keyed hashes (HMAC-SHA256 under the master key) and compared in constant
time. A request that uses two authentication methods at once is refused (RFC 6749 §2.3), and a
confidential client must use the method it registered (`token_endpoint_auth_method`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit

from starlette.datastructures import FormData, Headers

from gateway.crypto import Sealer, constant_time_equals
from gateway.errors import InvalidClient, InvalidRequest
from gateway.settings import ClientSettings

_PURPOSE = "client-secret"


@dataclass(frozen=True)
class Client:
    """A registered client as the OP uses it."""

    config: ClientSettings
    secret_hash: str | None

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def is_public(self) -> bool:
        return self.config.is_public

    @property
    def name(self) -> str:
        return self.config.client_name or self.config.client_id


class ClientRegistry:
    """Look up and authenticate clients."""

    def __init__(self, clients: list[ClientSettings], sealer: Sealer) -> None:
        self._sealer = sealer
        self._clients = {
            c.client_id: Client(
                c, sealer.keyed_hash(c.client_secret, purpose=_PURPOSE) if c.client_secret else None
            )
            for c in clients
        }
        # Compared against when the client is unknown, so timing does not reveal client ids.
        self._dummy = sealer.keyed_hash("unknown-client", purpose=_PURPOSE)
        self._origins = {c.client_id: c.cors_origins for c in clients}
        self._any_origin = frozenset().union(*self._origins.values())

    def origin_allowed(self, origin: str, client_id: str | None) -> bool:
        """May a page on `origin` read an answer given to `client_id` (CORS)? With no client
        known yet (a preflight, an error before authentication), any client's origin may."""
        if client_id is None:
            return origin in self._any_origin
        return origin in self._origins.get(client_id, frozenset())

    def get(self, client_id: str | None) -> Client | None:
        """The client, or None."""
        return self._clients.get(client_id or "")

    def authenticate(self, headers: Headers, form: FormData) -> Client:
        """The authenticated client of a back-channel request; InvalidClient otherwise."""
        basic = _basic_credentials(headers.get("authorization"))
        form_id, form_secret = form.get("client_id"), form.get("client_secret")
        if basic and form_secret is not None:
            raise InvalidRequest("use one client authentication method, not two")
        if basic:
            client_id, secret, method = basic[0], basic[1], "client_secret_basic"
            if form_id is not None and form_id != client_id:
                raise InvalidRequest("client_id does not match the authenticated client")
        elif form_secret is not None:
            client_id, secret, method = str(form_id or ""), str(form_secret), "client_secret_post"
        else:
            client_id, secret, method = str(form_id or ""), None, "none"
        client = self.get(client_id)
        if client is None:
            if secret is not None:
                constant_time_equals(self._dummy, self._sealer.keyed_hash(secret, purpose=_PURPOSE))
            raise InvalidClient("client authentication failed")
        if client.is_public:
            if method != "none":
                raise InvalidClient("this client is public and has no secret")
            return client
        if secret is None or client.secret_hash is None:
            raise InvalidClient("client authentication required")
        registered = client.config.token_endpoint_auth_method
        if method != registered:
            # The registered method is the only one (RFC 7591 §2): a secret that leaks where
            # the client never sends it (a form field in a log) must not work.
            raise InvalidClient(f"this client authenticates with {registered}")
        if not constant_time_equals(
            client.secret_hash, self._sealer.keyed_hash(secret, purpose=_PURPOSE)
        ):
            raise InvalidClient("client authentication failed")
        return client

    def match_redirect_uri(self, client: Client, requested: str | None) -> str | None:
        """The registered redirect URI that `requested` names, or None.

        Byte-exact comparison (RFC 9700 §4.1.3), with one exception, RFC 8252 §7.3: a native
        app (a public client: it has no secret, it runs on the user's machine) that registered
        a loopback IP literal (`http://127.0.0.1/...`, `http://[::1]/...`) may ask for any
        port, because it listens on whatever ephemeral port the OS gives it. Only the port
        varies: scheme, host, path and query stay exact, and the port must be a plain decimal
        one. A confidential (web) client gets no such leeway: a server has a fixed address,
        and a port that varies there would let another local service receive its codes.
        `localhost` is never port-free (RFC 8252 §8.3: it may resolve elsewhere). With no URI
        requested, the client must have exactly one registered."""
        registered = client.config.redirect_uris
        if requested is None:
            return registered[0] if len(registered) == 1 else None
        if requested in registered:
            return requested
        if not client.is_public:
            return None
        try:
            asked = urlsplit(requested)
            port = asked.port
        except ValueError:
            # An IDNA-invalid host (U+FF0F normalises to "/"), an unbalanced "[", a port out
            # of range: a URL we cannot even read is not registered (error page, never a 500).
            return None
        if asked.scheme != "http" or asked.hostname not in ("127.0.0.1", "::1"):
            return None
        # "127.0.0.1:" (no digits) or port 0 is no port a native app listens on.
        if port is None or port == 0 or "@" in asked.netloc or "#" in requested:
            return None
        for uri in registered:
            known = urlsplit(uri)
            same_but_port = (
                known.scheme == "http"
                and known.hostname == asked.hostname
                and requested == uri.replace(known.netloc, asked.netloc, 1)
            )
            if same_but_port:
                return requested
        return None


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise InvalidClient("malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(user), unquote_plus(password)
