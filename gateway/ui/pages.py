"""Rendering hosted pages: Jinja2 with autoescaping, and the headers every page carries.

Every HTML response gets a strict Content-Security-Policy with `frame-ancestors 'none'`
(clickjacking), `no-store` caching (pages may show personal data), and a same-origin referrer
policy (URLs hold flow ids, which must not reach other sites). Cookie helpers live here too,
because the cookie rules follow the issuer: `__Host-` prefixed and Secure on https, plain names
on a loopback http demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.settings import Settings

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' {form}; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer a browser's form POST carries
    # "Origin: null", which the CSRF check must refuse; URLs still never leak to other sites.
    "Referrer-Policy": "same-origin",
}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class Pages:
    """Renders templates for one deployment (issuer, cookie rules)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secure = settings.secure_cookies

    def cookie_name(self, base: str) -> str:
        """`__Host-<base>` when cookies can be Secure, else `<base>`."""
        return f"__Host-{base}" if self.secure else base

    def set_cookie(
        self, response: Response, base: str, value: str, max_age: int | None = None
    ) -> None:
        """A host-only, HttpOnly, SameSite=Lax cookie (Secure on https)."""
        response.set_cookie(
            self.cookie_name(base),
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, response: Response, base: str) -> None:
        response.delete_cookie(
            self.cookie_name(base), path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def cookie(self, request: Request, base: str) -> str | None:
        return request.cookies.get(self.cookie_name(base))

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
        form_targets: str = "",
        allow_scripts: bool = False,
    ) -> HTMLResponse:
        """A page with the security headers; `form_targets` widens CSP form-action (forms that
        end at another origin), `allow_scripts` allows our own static scripts (auto-post)."""
        html = _env.get_template(template).render(
            issuer=self.settings.issuer, request_path=request.url.path, **(context or {})
        )
        policy = CSP.format(form=form_targets) + ("; script-src 'self'" if allow_scripts else "")
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": policy}
        return HTMLResponse(html, status_code=status_code, headers=headers)

    def error(
        self, request: Request, title: str, message: str, status_code: int = 400
    ) -> HTMLResponse:
        """The friendly error page."""
        return self.render(request, "error.html", {"title": title, "message": message}, status_code)
