"""Settings: precise messages with YAML paths, ${VAR} expansion, *_file secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.settings import parse_duration
from gateway.settings_loader import load_settings, settings_from_dict

BASE = {"issuer": "https://auth.example.com", "secret_key": "s" * 32}


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(data)
    return caught.value.problems


def test_example_config_is_valid() -> None:
    settings = load_settings(Path(__file__).parent.parent / "config" / "gateway.example.yaml")
    assert settings.clients and settings.connectors[0].type == "local"


def test_messages_name_the_yaml_path() -> None:
    found = problems(
        {
            **BASE,
            "clients": [
                {
                    "client_id": "a",
                    "client_secret": "x" * 16,
                    "redirect_uris": ["https://ok.example/cb", "/relative"],
                }
            ],
        }
    )
    assert found == ["clients[0].redirect_uris[1] (a): must be an absolute URL"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"issuer": "http://auth.example.com"}, "issuer: must use https"),
        ({"issuer": "https://a.example/?x=1"}, "issuer: must not have a query"),
        ({"secret_key": "short"}, "secret_key: String should have at least 32 characters"),
        ({"store": "mysql://x"}, "store.url: must start with redis://"),
        ({"store": "redis+sentinel://h:26379"}, "store.url: redis+sentinel:// needs"),
        (
            {
                "connectors": [
                    {
                        "id": "x",
                        "type": "oauth2",
                        "name": "X",
                        "client_id": "c",
                        "client_secret": "s",
                    }
                ]
            },
            "connectors[0] (x): give a preset",
        ),
        (
            {
                "connectors": [
                    {
                        "id": "x",
                        "type": "oauth2",
                        "name": "X",
                        "preset": "amazon",
                        "base_url": "https://ghe.example.com",
                        "client_id": "c",
                        "client_secret": "s",
                    }
                ]
            },
            "connectors[0] (x): base_url is for",
        ),
        (
            {
                "connectors": [
                    {
                        "id": "x",
                        "type": "oidc",
                        "name": "X",
                        "issuer": "https://i.example",
                        "client_id": "c",
                        "client_secret": "s",
                        "scopes": ["email"],
                    }
                ]
            },
            "connectors[0].scopes (x): must include openid",
        ),
        ({"connectors": [{"id": "x", "type": "ldap"}]}, "connectors[0] (x): Input tag 'ldap'"),
        (
            {
                "connectors": [
                    {
                        "id": f"c{n}",
                        "type": "oauth2",
                        "name": "C",
                        "preset": "github",
                        "client_id": "i",
                        "client_secret": "s",
                        "domains": ["corp.example"],
                    }
                    for n in (1, 2)
                ]
            },
            "connectors[1].domains (c2): corp.example already signs in through 'c1'",
        ),
        (
            {"connectors": [{"id": "x", "type": "saml", "name": "X", "idp_metadata": "/nope.xml"}]},
            "connectors[0].idp_metadata (x): /nope.xml: no such file",
        ),
        ({"tokens": {"code_ttl": "soon"}}, "tokens.code_ttl: must be a duration"),
        ({"keys": {"files": ["/nonexistent.pem"]}}, "keys.files: no such file"),
        ({"colour": "blue"}, "colour: unknown key"),
        (
            {
                "clients": [
                    {
                        "client_id": "p",
                        "token_endpoint_auth_method": "none",
                        "client_secret": "x" * 16,
                        "redirect_uris": ["https://a/cb"],
                    }
                ]
            },
            "clients[0] (p): a public client",
        ),
        (
            {"clients": [{"client_id": "c", "redirect_uris": ["https://a/cb"]}]},
            "clients[0] (c): client_secret is required",
        ),
        (
            {
                "clients": [
                    {
                        "client_id": "c",
                        "client_secret": "x" * 16,
                        "redirect_uris": ["https://a/cb#frag"],
                    }
                ]
            },
            "clients[0].redirect_uris[0] (c): must not contain a fragment",
        ),
        (
            {
                "clients": [
                    {
                        "client_id": "c",
                        "client_secret": "x" * 16,
                        "redirect_uris": ["http://app.example.com/cb"],
                    }
                ]
            },
            "clients[0].redirect_uris[0] (c): must use https",
        ),
        (
            {
                "clients": [
                    {
                        "client_id": "d",
                        "token_endpoint_auth_method": "none",
                        "redirect_uris": ["https://a/cb"],
                    }
                ]
                * 2
            },
            "clients[1].client_id: duplicate id 'd' (also clients[0])",
        ),
        (
            {
                "admin_keys": [
                    {"access_key_id": "AKIDTWICE0000000001", "secret_access_key": "s" * 32},
                    {"access_key_id": "AKIDTWICE0000000001", "secret_access_key": "t" * 32},
                ]
            },
            "admin_keys: access_key_id 'AKIDTWICE0000000001' is listed twice",
        ),
        (
            {"user_pool": {"id": "eu-west-1-MyPool123"}},
            "user_pool.id: 'eu-west-1-MyPool123' is not a Cognito user pool id: <region>_<1 to "
            "20 letters or digits>, e.g. eu-west-1_MyPool123",
        ),
    ],
)
def test_precise_problems(data: dict, expected: str) -> None:
    found = problems({**BASE, **data})
    assert any(p.startswith(expected) for p in found), found


def test_missing_keys_are_required() -> None:
    assert set(problems({})) == {"issuer: required", "secret_key: required"}


def test_env_expansion_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISSUER_HOST", "auth.example.org")
    settings = settings_from_dict(
        {"issuer": "https://${ISSUER_HOST}", "secret_key": "${NOT_SET_ANYWHERE:-" + "d" * 32 + "}"}
    )
    assert settings.issuer == "https://auth.example.org"
    assert settings.secret_key == "d" * 32
    assert problems({**BASE, "issuer": "https://${NOT_SET_ANYWHERE}"}) == [
        "issuer: environment variable NOT_SET_ANYWHERE is not set"
    ]


def test_secret_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("f" * 40 + "\n")
    config = tmp_path / "gateway.yaml"
    config.write_text("issuer: https://a.example\nsecret_key_file: key\n")
    assert load_settings(config).secret_key == "f" * 40
    config.write_text("issuer: https://a.example\nsecret_key_file: missing\n")
    with pytest.raises(ConfigError, match="secret_key_file: cannot read"):
        load_settings(config)
    config.write_text(f"issuer: https://a.example\nsecret_key: {'x' * 32}\nsecret_key_file: key\n")
    with pytest.raises(ConfigError, match="not both"):
        load_settings(config)


def test_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("issuer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml")


def test_durations() -> None:
    assert [parse_duration(v) for v in (90, "90", "90s", "15m", "12h", "30d")] == [
        90,
        90,
        90,
        900,
        43200,
        2592000,
    ]
    for bad in ("", "1w", "-5", 0, True, "1.5h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_loopback_http_issuer_is_allowed_and_not_secure() -> None:
    settings = settings_from_dict({**BASE, "issuer": "http://127.0.0.1:8000/"})
    assert settings.issuer == "http://127.0.0.1:8000" and not settings.secure_cookies


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {
                "clients": [
                    {
                        "client_id": "c",
                        "client_secret": "x" * 16,
                        "redirect_uris": ["https://a/cb"],
                        "response_types": ["code"],
                    }
                ]
            },
            "clients[0].response_types (c): unknown key (removed: `code` is the only response type",
        ),
        (
            {
                "clients": [
                    {
                        "client_id": "c",
                        "client_secret": "x" * 16,
                        "redirect_uris": ["https://a/cb"],
                        "backchannel_logout_session_required": True,
                    }
                ]
            },
            "clients[0].backchannel_logout_session_required (c): unknown key (removed: the logout "
            "tokens always carry sid)",
        ),
        (
            {
                "connectors": [
                    {
                        "id": "x",
                        "type": "saml",
                        "name": "X",
                        "want_assertions_encrypted": True,
                    }
                ]
            },
            "connectors[0].want_assertions_encrypted (x): unknown key (removed: it was never "
            "enforced",
        ),
        (
            {
                "identity_pools": [
                    {
                        "id": "us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
                        "name": "p",
                        "sts": {"region": "eu-west-1"},
                    }
                ]
            },
            "identity_pools[0].sts.region (us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b): "
            "unknown key (removed: AssumeRoleWithWebIdentity is "
            "unsigned; for a regional STS give sts.endpoint: https://sts.<region>.amazonaws.com)",
        ),
    ],
)
def test_a_retired_key_says_what_became_of_it(data: dict, expected: str) -> None:
    # Settings once accepted but never read: a file that still has one fails, and says why.
    found = problems({**BASE, **data})
    assert any(p.startswith(expected) for p in found), found


def test_a_retired_key_elsewhere_is_just_unknown() -> None:
    # Retired by its whole path: `region` beside a pool's other keys was never a key at all.
    pool = {"id": "us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "name": "p", "region": "x"}
    assert problems({**BASE, "identity_pools": [pool]}) == [
        "identity_pools[0].region (us-east-1:0f6e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b): "
        "unknown key (check the spelling against "
        "config/gateway.example.yaml)"
    ]


def test_the_passkey_relying_party_id_is_the_issuers_host_or_a_parent_domain() -> None:
    def rp(value: str, issuer: str = BASE["issuer"]) -> list[str]:
        return problems(
            {**BASE, "issuer": issuer, "user_pool": {"passkey_relying_party_id": value}}
        )

    for fine in ("example.com", "auth.example.com"):
        data = {**BASE, "user_pool": {"passkey_relying_party_id": fine}}
        assert settings_from_dict(data).user_pool.passkey_relying_party_id == fine
    (other,) = rp("example.org")
    assert other.startswith("user_pool.passkey_relying_party_id: example.org is not")
    assert "use auth.example.com or one of its parent domains, or leave it out" in other
    (tld,) = rp("com")
    assert tld.startswith("user_pool.passkey_relying_party_id: com is a top-level domain")
    (url,) = rp("https://example.com")
    assert url.startswith("user_pool.passkey_relying_party_id: 'https://example.com' is not a")
    assert "e.g. example.com" in url
    (ip,) = rp("localhost", issuer="http://127.0.0.1:8080")
    assert "127.0.0.1 is an IP address" in ip and "give the issuer a host name" in ip


def test_key_files_must_hold_a_key_for_every_algorithm_in_use(tmp_path: Path) -> None:
    """keys.files is a static key set: an algorithm without a key among the files would only
    fail at the first token it signs (a 503, after the request's work was done)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    def pem(name: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
        path = tmp_path / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(path)

    def found(data: dict) -> list[str]:
        try:
            settings_from_dict({**BASE, **data})
        except ConfigError as exc:
            return exc.problems
        return []

    rsa_file = pem("rsa.pem", rsa.generate_private_key(65537, 2048))
    ec_file = pem("ec.pem", ec.generate_private_key(ec.SECP256R1()))
    workload = {"client_id": "ci", "token_endpoint_auth_method": "none", "grant_types": []}
    only_rsa = {"keys": {"files": [rsa_file]}}
    assert any(  # the default access tokens are ES256
        "keys.access_token_alg: ES256, but keys.files has no ES256 key" in p
        for p in found(only_rsa)
    )
    rsa_everywhere = {"keys": {"files": [rsa_file], "access_token_alg": "RS256"}}
    assert found(rsa_everywhere) == []
    with_es256_client = {
        **rsa_everywhere,
        "clients": [{**workload, "id_token_signed_response_alg": "ES256"}],
    }
    assert any(
        "clients[0].id_token_signed_response_alg (ci): ES256, but keys.files has no ES256" in p
        for p in found(with_es256_client)
    )
    both = {"keys": {"files": [rsa_file, ec_file]}, "clients": with_es256_client["clients"]}
    assert found(both) == []
    (tmp_path / "junk.pem").write_text("not a key")
    assert any(
        "is not an unencrypted PEM private key" in p
        for p in found({"keys": {"files": [str(tmp_path / "junk.pem")]}})
    )


def test_a_problem_in_a_list_entry_names_the_entry() -> None:
    # `clients[2]` alone makes the reader count; the entry's own name says which one it is.
    base = {"issuer": "https://auth.example.com", "secret_key": "s" * 32}
    rules = [
        {"name": "ci", "issuer": "https://token.actions.githubusercontent.com", "audience": "x"},
        {"name": "deploy", "issuer": "https://token.actions.githubusercontent.com"},
    ]
    with pytest.raises(ConfigError) as found:
        settings_from_dict({**base, "token_exchange": {"trust": rules}})
    assert found.value.problems == ["token_exchange.trust[1].audience (deploy): required"]
    # Inside a list of plain values (a redirect URI), the entry that has a name names it.
    client = {"client_id": "web", "client_secret": "c" * 20, "redirect_uris": ["nope"]}
    with pytest.raises(ConfigError) as found:
        settings_from_dict({**base, "clients": [client]})
    assert found.value.problems == ["clients[0].redirect_uris[0] (web): must be an absolute URL"]


def test_entry_names_are_the_entrys_own_and_shown_escaped() -> None:
    base = {"issuer": "https://auth.example.com", "secret_key": "s" * 32}
    # A connector has a client_id too (its IdP's): that is not its name.
    corp = {"type": "oidc", "name": "Corp", "issuer": "https://idp.example", "client_id": "idp"}
    with pytest.raises(ConfigError) as found:
        settings_from_dict({**base, "connectors": [{"id": "local", "type": "local"}, corp]})
    assert found.value.problems == ["connectors[1].id (Corp): required"]
    # A name is the file's text: a newline or an escape sequence must not reach the terminal.
    odd = {"client_id": "web\n  - fine\x1b[2J", "client_secret": "c" * 20, "redirect_uris": ["x"]}
    with pytest.raises(ConfigError) as found:
        settings_from_dict({**base, "clients": [odd]})
    (problem,) = found.value.problems
    assert "\n" not in problem and "\x1b" not in problem and "(web\\n  - fine\\x1b[2J)" in problem


def test_files_that_are_not_settings_are_one_clear_error(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bin")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(binary)
    looped = tmp_path / "loop.yaml"
    looped.write_text("issuer: https://a.example\nsecret_key: " + "k" * 40 + "\nx: &x [*x]\n")
    with pytest.raises(ConfigError, match="refers to the value it is part of"):
        load_settings(looped)


def test_rules_of_one_issuer_share_a_key_source_and_the_problem_names_the_rule() -> None:
    base = {"issuer": "https://auth.example.com", "secret_key": "s" * 32}
    issuer = "https://token.actions.githubusercontent.com"
    rules = [
        {"name": "ci", "issuer": issuer, "audience": "x"},
        {"name": "release", "issuer": issuer, "audience": "x", "jwks_uri": "https://k.example"},
    ]
    with pytest.raises(ConfigError) as found:
        settings_from_dict({**base, "token_exchange": {"trust": rules}})
    (problem,) = found.value.problems
    assert "trust[1].jwks_uri (release): every rule for " + issuer in problem


def test_trust_rules_have_their_own_names_and_clients_that_can_exchange() -> None:
    base = {"issuer": "https://auth.example.com", "secret_key": "s" * 32}
    github = "https://token.actions.githubusercontent.com"
    exchange = "urn:ietf:params:oauth:grant-type:token-exchange"
    clients = [
        {"client_id": "ci", "token_endpoint_auth_method": "none", "grant_types": [exchange]},
        {"client_id": "web", "client_secret": "c" * 20, "redirect_uris": ["https://a.example/cb"]},
    ]

    def problems(*rules: dict[str, Any]) -> list[str]:
        try:
            settings_from_dict({**base, "clients": clients, "token_exchange": {"trust": rules}})
        except ConfigError as exc:
            return exc.problems
        return []

    rule = {"issuer": github, "audience": "x"}
    assert problems({**rule, "name": "deploy", "client_ids": ["ci"]}, rule) == []
    # Refusals name the rule: two of one name (given, or the default trust[i]) are ambiguous.
    (twice,) = problems({**rule, "name": "deploy"}, {**rule, "name": "deploy"})
    assert "trust[1].name: 'deploy' is also trust[0]'s name" in twice
    (posing,) = problems({**rule, "name": "trust[1]"}, rule)
    assert "trust[1].name: 'trust[1]' is also trust[0]'s name" in posing
    # A client_ids entry that could never exchange: a typo, or a client without the grant.
    (typo,) = problems({**rule, "name": "deploy", "client_ids": ["cj"]})
    assert typo == (
        "token_exchange.trust[0].client_ids (deploy): 'cj' cannot exchange tokens (no client "
        "has this client_id: clients with the grant: ci)"
    )
    (no_grant,) = problems({**rule, "client_ids": ["web"]})
    assert no_grant.startswith("token_exchange.trust[0].client_ids (trust[0]): 'web' cannot")
    assert f"add {exchange} to its grant_types" in no_grant


def test_unset_variables_and_unreadable_files_are_reported_with_everything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COGNATE_TEST_UNSET", raising=False)
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "issuer: https://auth.example.com\nsecret_key: " + "s" * 40 + "\nclients:\n"
        "  - {client_id: web, client_secret: '${COGNATE_TEST_UNSET}', redirect_uris: [nope]}\n"
        "  - {client_id: api, client_secret_file: missing.txt, grant_types: [client_credentials]}\n"
    )
    with pytest.raises(ConfigError) as found:
        load_settings(path)
    problems = found.value.problems
    # Each said once, where it is, named; and the other problems in the same pass.
    assert "clients[0].client_secret (web): environment variable COGNATE_TEST_UNSET is not set" in (
        problems
    )
    assert any(p.startswith("clients[1].client_secret_file (api): cannot read ") for p in problems)
    assert "clients[0].redirect_uris[0] (web): must be an absolute URL" in problems
    # Not the placeholder's own complaint (an empty secret is too short).
    assert not any(p.startswith("clients[0].client_secret (web): String") for p in problems)
