"""Rendering hosted pages: Jinja2 with autoescaping, and the headers every page carries.

Every HTML response gets a strict Content-Security-Policy with `frame-ancestors 'none'`
(clickjacking), `no-store` caching (pages may show personal data), and a same-origin referrer
policy (URLs hold flow ids, which must not reach other sites); on an https issuer also
`Strict-Transport-Security`. Cookie helpers live here too, because the cookie rules follow the
issuer: `__Host-` prefixed and Secure on https, plain names on a loopback http demo. The session
cookie shared with a parent domain (`sessions.cookie_domain`) cannot be `__Host-` (that prefix
forbids a Domain): it is `__Secure-` instead, still Secure and HttpOnly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.settings import Settings
from gateway.ui.i18n import choose, translator

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data: {img}; form-action 'self' {form}; "
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

HSTS = "max-age=31536000"  # no includeSubDomains: the issuer's parent may serve other sites

BUNDLED = Path(__file__).parent / "templates"


class Pages:
    """Renders templates for one deployment (issuer, cookie rules, theme, languages).

    `ui.templates_dir` overrides the bundled templates file by file (a missing file falls back
    to the bundled one); the theme (product name, logo, accent colour, extra CSS, per-client
    branding) reaches pages through `/theme.css`, so the CSP can stay `style-src 'self'`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secure = settings.secure_cookies
        self._shared = settings.sessions.cookie_name  # the one cookie cookie_domain applies to
        self.cookie_domain = settings.sessions.cookie_domain
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(BUNDLED)]
        if settings.ui.templates_dir is not None:
            loaders.insert(0, jinja2.FileSystemLoader(settings.ui.templates_dir))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders), autoescape=True, undefined=jinja2.StrictUndefined
        )

    def _domain(self, base: str, host_only: bool) -> str | None:
        return None if host_only or base != self._shared else self.cookie_domain

    def cookie_name(self, base: str, host_only: bool = False) -> str:
        """`__Host-<base>` when cookies can be Secure (`__Secure-<base>` when the cookie is
        shared with `sessions.cookie_domain`), else `<base>`."""
        if not self.secure:
            return base
        return f"__Secure-{base}" if self._domain(base, host_only) else f"__Host-{base}"

    def own_cookie_names(self) -> frozenset[str]:
        """Every name Cognate's cookies may have, which no app behind it should receive."""
        bases = (self._shared, "cognate_csrf", "cognate_bind")
        return frozenset(
            f"{prefix}{base}" for base in bases for prefix in ("", "__Host-", "__Secure-")
        )

    def set_cookie(
        self,
        response: Response,
        base: str,
        value: str,
        max_age: int | None = None,
        host_only: bool = False,
    ) -> None:
        """An HttpOnly, SameSite=Lax cookie (Secure on https), host-only unless it is the
        session cookie and `sessions.cookie_domain` is set (and `host_only` is not asked)."""
        response.set_cookie(
            self.cookie_name(base, host_only),
            value,
            max_age=max_age,
            path="/",
            domain=self._domain(base, host_only),
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, response: Response, base: str, host_only: bool = False) -> None:
        response.delete_cookie(
            self.cookie_name(base, host_only),
            path="/",
            domain=self._domain(base, host_only),
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def cookie(self, request: Request, base: str, host_only: bool = False) -> str | None:
        return request.cookies.get(self.cookie_name(base, host_only))

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
        context = context or {}
        ui_locales = context.get("ui_locales")
        language = self.language(request, ui_locales if isinstance(ui_locales, str) else None)
        client_id = context.get("client_id") or request.query_params.get("client_id")
        branding = self.branding(client_id if isinstance(client_id, str) else None)
        html = self._env.get_template(template).render(
            {
                "issuer": self.settings.issuer,
                "request_path": request.url.path,
                "lang": language,
                "_": translator(language),
                "brand": branding,
                **context,
            }
        )
        logo = str(branding.get("logo_url") or "")
        logo_origin = "/".join(logo.split("/")[:3]) if logo.startswith("https://") else ""
        policy = CSP.format(form=form_targets, img=logo_origin)
        policy += "; script-src 'self'" if allow_scripts else ""
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": policy}
        if self.secure:  # https issuer: browsers must never come back over plain http
            headers["Strict-Transport-Security"] = HSTS
        return HTMLResponse(html, status_code=status_code, headers=headers)

    def language(self, request: Request, ui_locales: str | None = None) -> str:
        """The language this browser reads: ui_locales, then Accept-Language, then the first
        configured."""
        return choose(
            self.settings.ui.languages,
            request.query_params.get("ui_locales") or ui_locales,
            request.headers.get("accept-language"),
        )

    def branding(self, client_id: str | None) -> dict[str, Any]:
        """Product name, logo and theme URL: the deployment's, or a client's own."""
        ui = self.settings.ui
        client = self.settings.client(client_id) if client_id else None
        own = client.branding if client and client.branding else None
        return {
            "name": (own.name if own and own.name else None) or ui.product_name,
            "logo_url": (own.logo_url if own and own.logo_url else None) or ui.logo_url,
            "css": "/theme.css" + (f"?client={client.client_id}" if client and own else ""),
        }

    def theme_css(self, client_id: str | None) -> str:
        """The CSS variables of the theme (and the deployment's extra CSS)."""
        ui = self.settings.ui
        client = self.settings.client(client_id) if client_id else None
        accent = (client.branding.accent_color if client and client.branding else None) or (
            ui.accent_color
        )
        css = f":root {{ --accent: {accent}; }}\n"
        if ui.custom_css is not None:
            css += Path(ui.custom_css).read_text(encoding="utf-8")
        return css

    def error(
        self, request: Request, title: str, message: str, status_code: int = 400
    ) -> HTMLResponse:
        """The friendly error page."""
        return self.render(request, "error.html", {"title": title, "message": message}, status_code)
