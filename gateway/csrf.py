"""CSRF protection for the hosted forms.

Each browser gets a random `cognate_csrf` cookie (HttpOnly, SameSite=Lax). A form's token is an
HMAC of that cookie and the form's purpose (e.g. `login:<flow id>`), so a token is useless
without the cookie and useless for another form. POSTs must also come from our own origin when
the browser says where they come from (`Origin`, else `Sec-Fetch-Site`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import FormData
from starlette.requests import Request

from gateway.crypto import Sealer, constant_time_equals, random_token
from gateway.errors import PageError

if TYPE_CHECKING:
    from gateway.ui.pages import Pages

COOKIE = "cognate_csrf"


class Csrf:
    """Issue and check form tokens."""

    def __init__(self, sealer: Sealer, pages: Pages, issuer: str) -> None:
        self._sealer = sealer
        self._pages = pages
        self._origin = _origin(issuer)

    def browser_secret(self, request: Request) -> tuple[str, bool]:
        """The browser's CSRF cookie value, and whether it must be set (new browser)."""
        value = self._pages.cookie(request, COOKIE)
        if value and 20 <= len(value) <= 64:
            return value, False
        return random_token(24), True

    def token(self, browser_secret: str, purpose: str) -> str:
        """The token a form with this purpose must echo."""
        return self._sealer.keyed_hash(f"{browser_secret}|{purpose}", purpose="csrf")

    def check(self, request: Request, form: FormData, purpose: str) -> str:
        """Raise a 403 page unless the POST is same-origin and carries the right token.
        Returns the browser secret."""
        origin = request.headers.get("origin")
        if origin is not None and origin != self._origin:
            raise PageError("Request refused", "This form was sent from another site.", 403)
        if origin is None and request.headers.get("sec-fetch-site") == "cross-site":
            raise PageError("Request refused", "This form was sent from another site.", 403)
        secret = self._pages.cookie(request, COOKIE)
        sent = form.get("_csrf")
        if (
            not secret
            or not isinstance(sent, str)
            or not constant_time_equals(sent, self.token(secret, purpose))
        ):
            raise PageError(
                "Request refused",
                "Your session for this form has expired or cookies are blocked. "
                "Go back, reload the page and try again.",
                403,
            )
        return secret


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
