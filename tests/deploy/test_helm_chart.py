"""The Helm chart: linted strictly, rendered (helm-python-sdk bundles Helm's engine; no binary),
and every manifest validated against Kubernetes' schemas in strict mode (kubernetes-validate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from gateway.settings_loader import settings_from_dict

CHART = Path(__file__).parent.parent.parent / "helm" / "cognate"
KUBERNETES = "1.30"
# The shape production uses: the master key in a Secret made outside the chart.
EXISTING = {"secret": {"existingSecret": "cognate-keys"}}
EVERYTHING = {
    "secret": {"secretKey": "s" * 40},
    "ingress": {
        "enabled": True,
        "tls": [{"secretName": "auth-tls", "hosts": ["auth.example.com"]}],
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "64k"},
    },
    "autoscaling": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "extraEnv": [
        {"name": "CORP_SECRET", "valueFrom": {"secretKeyRef": {"name": "corp", "key": "secret"}}}
    ],
}


SIDECAR = yaml.safe_load((CHART / "examples" / "sidecar-values.yaml").read_text()) | {
    "secret": {"secretKey": "s" * 40}
}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name="auth", namespace="identity")
    docs = []
    for name, text in files.items():
        if name.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.mark.parametrize("values", [None, EXISTING], ids=["defaults", "existing-secret"])
def test_chart_lints_strictly(values: dict[str, Any] | None) -> None:
    report = helm.lint(str(CHART), values, strict=True)
    assert report["total_charts_linted"] == 1
    assert not report["errors"], report
    # Helm's severities: 1 info, 2 warning, 3 error. Strict means no warnings either.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def master_key(docs: list[dict[str, Any]]) -> str | None:
    secret = next((d for d in docs if d["kind"] == "Secret"), None)
    return None if secret is None else str(secret["data"].get("secret-key"))


def test_a_render_never_makes_a_new_master_key() -> None:
    # GitOps tools render with `helm template`, where `lookup` sees no cluster: a key generated
    # there is new on every sync, and every pod then fails with "stored signing keys cannot be
    # decrypted". Without a key given, such a render fails and says what to set.
    with pytest.raises(helm.errors.HelmRenderError) as refused:
        render({})
    message = str(refused.value)
    assert "secret.existingSecret" in message and "secret-key" in message
    assert "stored signing keys cannot be decrypted" in message
    # A key given inline renders the same every time.
    inline = {"secret": {"secretKey": "k" * 40}}
    assert master_key(render(inline)) == master_key(render(inline)) is not None
    # An existing Secret: the chart renders no key of its own and mounts that Secret's.
    docs = render(EXISTING)
    assert master_key(docs) is None
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "secrets")
    assert volume["secret"] == {
        "secretName": "cognate-keys",
        "items": [{"key": "secret-key", "path": "secret-key"}],
    }
    env = {e["name"]: e["valueFrom"] for e in pod["containers"][0]["env"] if "valueFrom" in e}
    assert env["COGNATE_REDIS_URL"]["secretKeyRef"] == {"name": "cognate-keys", "key": "redis-url"}


@pytest.mark.parametrize(
    "values",
    [EXISTING, EVERYTHING, SIDECAR],
    ids=["existing-secret", "everything", "sidecar-example"],
)
def test_rendered_manifests_are_valid_kubernetes(values: dict[str, Any]) -> None:
    docs = render(values)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "ServiceAccount",
        "PodDisruptionBudget",
    } <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no upstream schema; its shape is checked below
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    if values is not EXISTING:
        assert "Secret" in kinds
    if values is EVERYTHING:
        assert {"Ingress", "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor"} <= kinds


def test_pods_run_restricted_with_probes() -> None:
    deployment = next(d for d in render(EXISTING) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # A slow first start (Redis, keys) is not killed by liveness: the startup probe comes first.
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    # Rolling updates: the pod keeps serving while endpoints are removed, then drains, and the
    # kubelet's grace period outlasts the sleep.
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep" and sleep > 0
    assert pod["terminationGracePeriodSeconds"] > sleep
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert spread["kubernetes.io/hostname"]["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "cognate",
        "app.kubernetes.io/instance": "auth",
    }


def test_a_grace_period_shorter_than_the_pre_stop_sleep_is_refused() -> None:
    with pytest.raises(helm.errors.HelmRenderError, match="terminationGracePeriodSeconds"):
        render(EXISTING | {"preStopSleepSeconds": 30, "terminationGracePeriodSeconds": 30})


def test_rendered_gateway_config_is_accepted_by_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_map = next(d for d in render(EXISTING) if d["kind"] == "ConfigMap")
    settings = yaml.safe_load(config_map["data"]["gateway.yaml"])
    assert settings["secret_key_file"] == "/run/secrets/cognate/secret-key"
    (tmp_path / "secret-key").write_text("k" * 48)
    settings["secret_key_file"] = str(tmp_path / "secret-key")
    monkeypatch.setenv("COGNATE_REDIS_URL", "redis+sentinel://s1:26379/mymaster/0")
    parsed = settings_from_dict(settings)
    assert parsed.store.url.startswith("redis+sentinel://") and parsed.secret_key == "k" * 48


def test_schema_rejects_bad_values() -> None:
    with helm.Chart.load(str(CHART)) as chart:
        for bad in (
            {"replicaCount": 0},
            {"redis": {"url": "mysql://db"}},
            {"secret": {"secretKey": "short"}},
            {"config": {"issuer": "https://a", "store": {}, "secret_key": "x" * 40}},
            {"sidecar": {"enabled": True, "app": {"name": "a", "image": "x", "port": 8000}}},
        ):
            with pytest.raises(Exception):  # noqa: B017 - the SDK's schema error type
                chart.validate_schema(bad)
        chart.validate_schema({})


def test_sidecar_example_puts_cognate_in_front_of_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(SIDECAR)
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    cognate, app = pod["containers"]
    assert cognate["args"][:1] == ["proxy"]
    assert cognate["args"][cognate["args"].index("--upstream") + 1] == "http://127.0.0.1:8080"
    assert cognate["args"][cognate["args"].index("--health-path") + 1] == "/healthz"
    # /healthz is the app's health path there: the gateway's probes ask for its own paths.
    assert cognate["livenessProbe"]["httpGet"]["path"] == "/_cognate/healthz"
    assert cognate["readinessProbe"]["httpGet"]["path"] == "/_cognate/readyz"
    env = {e["name"]: e["value"] for e in app["env"]}
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].endswith("/_cognate/aws/credentials")
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == "/var/run/cognate/aws-token"
    assert app["securityContext"]["readOnlyRootFilesystem"] is True
    shared = {v["name"] for v in cognate["volumeMounts"]} & {v["name"] for v in app["volumeMounts"]}
    assert shared == {"aws-token"}
    # And the gateway accepts the settings the chart renders (sidecar and credentials included).
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    settings = yaml.safe_load(config_map["data"]["gateway.yaml"])
    (tmp_path / "secret-key").write_text("k" * 48)
    settings["secret_key_file"] = str(tmp_path / "secret-key")
    monkeypatch.setenv("COGNATE_REDIS_URL", "redis://redis:6379/0")
    parsed = settings_from_dict(settings)
    assert parsed.sidecar is not None and parsed.sidecar.credentials is not None


def test_metrics_listen_gets_its_own_port_everywhere() -> None:
    values = EVERYTHING | {
        "config": {
            "issuer": "https://auth.example.com",
            "store": {"url": "${COGNATE_REDIS_URL}"},
            "metrics": {"listen": "0.0.0.0:9100", "allow": ["10.0.0.0/8"]},
        },
        "networkPolicy": {"enabled": True, "metricsFrom": [{"namespaceSelector": {}}]},
    }
    docs = render(values)
    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    by_kind = {d["kind"]: d for d in docs}
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in container["ports"]
    ports = {p["name"]: p for p in by_kind["Service"]["spec"]["ports"]}
    assert ports["metrics"]["port"] == 9100 and ports["metrics"]["targetPort"] == "metrics"
    assert by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
    rules = by_kind["NetworkPolicy"]["spec"]["ingress"]
    assert {
        "ports": [{"port": 9100, "protocol": "TCP"}],
        "from": [{"namespaceSelector": {}}],
    } in rules
    # Without it, the ServiceMonitor scrapes the http port, as before.
    plain = {d["kind"]: d for d in render(EVERYTHING)}
    assert plain["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "http"
    assert [p["name"] for p in plain["Service"]["spec"]["ports"]] == ["http"]
