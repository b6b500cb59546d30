"""The compose demo's nginx config is the shipped one with only its demo differences, so a
fix to deploy/nginx/cognate.conf (tested through real nginx in test_field.py) cannot be left
out of the copy users start with `docker compose up`."""

from __future__ import annotations

from pathlib import Path

DEPLOY = Path(__file__).parent.parent.parent / "deploy"


def test_compose_nginx_is_the_shipped_config_for_the_demo() -> None:
    shipped = (DEPLOY / "nginx" / "cognate.conf").read_text()
    demo = (DEPLOY / "compose" / "nginx.conf").read_text()
    expected = shipped
    for old, new in [
        (
            "    server 127.0.0.1:8000;      # the gateway (add one line per replica)",
            "    server 172.29.53.20:8000;  # the gateway on compose.yaml's edge network",
        ),
        ("    server 127.0.0.1:8080;      # your application", "    server app:80;"),
        (
            "    listen 443 ssl;\n    server_name app.example.com;\n"
            "    ssl_certificate     /etc/ssl/certs/app.example.com.pem;\n"
            "    ssl_certificate_key /etc/ssl/private/app.example.com.key;\n",
            "    listen 80;                  # the compose demo: plain http on localhost only\n"
            "    server_name localhost;\n",
        ),
    ]:
        assert old in expected
        expected = expected.replace(old, new)
    body = demo.split("\n", 2)[2]  # after its two-line header
    assert body == expected
