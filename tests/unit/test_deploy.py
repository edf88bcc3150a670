"""Images, compose, Kubernetes manifests, alert rules and dashboards: linted and validated
here, since no container engine or cluster runs on these machines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from helpers import REPO
from prometheus_client import generate_latest

from dmcodec_service.metrics import Metrics

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
BIN = Path(sys.executable).parent


def exposed_metric_names() -> set[str]:
    """Every series name the service exposes, plus the recording rules built on them."""
    text = generate_latest(Metrics().registry).decode()
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",), "gauge": ("",)}
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            _, _, name, kind = line.split()
            names |= {name.removesuffix("_total") + suffix for suffix in suffixes[kind]}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names | {"up"}


def metric_names_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    promql = {"sum", "rate", "by", "histogram_quantile", "max", "avg_over_time", "clamp_min", "or", "and",
              "le", "op", "route", "status", "reason", "instance", "device", "name", "sha256", "backend",
              "precision", "job", "humanizePercentage", "value", "labels"}
    return {w for w in words if w not in promql and (w.startswith("dmcodec") or w == "up")}


def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), str(REPO / "docker" / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = REPO / "docker" / "Dockerfile.bad"
    try:  # the linter does find problems (a control, so the check above can fail)
        bad.write_text("FROM python\nRUN apt-get install curl\n")
        assert subprocess.run([str(BIN / "hadolint"), str(bad)], capture_output=True).returncode != 0
    finally:
        bad.unlink()


def test_dockerfile_runs_as_non_root_with_a_health_check_on_the_live_endpoint():
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert "USER 10001" in text and "STOPSIGNAL SIGTERM" in text
    assert "HEALTHCHECK" in text and "/v2/health/live" in text
    assert text.count("FROM ") >= 2  # multi-stage: build tools stay out of the runtime image
    assert "bash docker/install.sh" in text  # the same script test_image_environment runs


def test_compose_file_matches_the_compose_spec_and_its_mounts_exist():
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             str(DEPLOY / "compose.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(compose["services"]) == {"dmcodec", "prometheus", "grafana"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            assert (DEPLOY / volume.split(":")[0]).exists(), volume
    assert (DEPLOY / compose["services"]["dmcodec"]["build"]["context"] /
            compose["services"]["dmcodec"]["build"]["dockerfile"]).exists()
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["dmcodec:8000"]


def k8s_documents() -> list[tuple[str, dict]]:
    return [(p.name, doc) for p in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(p.read_text())
            if doc and doc["kind"] != "Kustomization"]


@pytest.mark.parametrize("name, doc", [d for d in k8s_documents() if d[1]["apiVersion"].count(".") < 2 or
                                       d[1]["apiVersion"].startswith(("apps/", "policy/", "autoscaling/"))],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_kubernetes_manifests_match_the_schemas(name, doc):
    kubernetes_validate.validate(doc, "1.33", strict=True)


def test_schema_validation_rejects_a_broken_manifest():
    doc = yaml.safe_load((K8S / "deployment-cpu.yaml").read_text())
    doc["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.33", strict=True)


def test_compose_fails_closed_and_keeps_monitoring_on_this_host():
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert services["dmcodec"]["environment"]["DMCODEC_API_KEYS"].startswith("${DMCODEC_API_KEYS:?")
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")
    drain = int(services["dmcodec"]["environment"]["DMCODEC_DRAIN_TIMEOUT_S"])
    assert int(services["dmcodec"]["stop_grace_period"].rstrip("s")) > drain + 5


def test_kubernetes_objects_fit_together():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in k8s_documents()}
    service = docs[("Service", "dmcodec")]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / r).exists() for r in kustomization["resources"])
    for variant in ("cpu", "gpu"):
        deployment = docs[("Deployment", f"dmcodec-{variant}")]
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        container = pod["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert docs[("HorizontalPodAutoscaler", f"dmcodec-{variant}")]["spec"]["scaleTargetRef"]["name"] == \
            deployment["metadata"]["name"]
        drain = next(int(e["value"]) for e in container["env"] if e["name"] == "DMCODEC_DRAIN_TIMEOUT_S")
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        # preStop, then the drain, then uvicorn's 5 s to close connections, inside the grace period
        assert pod["spec"]["terminationGracePeriodSeconds"] > pre_stop + drain + 5
        keys = next(e for e in container["env"] if e["name"] == "DMCODEC_API_KEYS")
        assert not keys["valueFrom"]["secretKeyRef"].get("optional", False)  # no Secret, no pod
    assert "nvidia.com/gpu" in docs[("Deployment", "dmcodec-gpu")]["spec"]["template"]["spec"]["containers"][0][
        "resources"]["limits"]
    pdb = docs[("PodDisruptionBudget", "dmcodec")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    monitor = docs[("ServiceMonitor", "dmcodec")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    adapter = yaml.safe_load(docs[("ConfigMap", "dmcodec-prometheus-adapter-rules")]["data"]["config.yaml"])
    exposed = {r["name"]["as"] for r in adapter["rules"]}
    hpa = docs[("HorizontalPodAutoscaler", "dmcodec-gpu")]
    hpa_metrics = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
    assert hpa_metrics <= exposed and exposed <= exposed_metric_names()


def test_dashboard_and_rules_only_use_metrics_the_service_exposes():
    names = exposed_metric_names()
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "dmcodec.json").read_text())
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("request rate", "error rate", "latency", "queue wait", "batch size", "queue depth",
                  "audio seconds per second", "gpu memory"):
        assert topic in titles
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    for expr in exprs:
        assert metric_names_in(expr) and metric_names_in(expr) <= names, expr


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None,
                    reason="promtool missing (Debian package 'prometheus'; scripts/test.sh installs it)")
def test_alert_rules_check_and_unit_tests_pass():
    rules = DEPLOY / "prometheus"
    check = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=rules, capture_output=True, text=True)
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr
    alerts = {r["alert"] for g in yaml.safe_load((rules / "alerts.yml").read_text())["groups"] for r in g["rules"]
              if "alert" in r}
    tested = set(re.findall(r"alertname: (\w+)", (rules / "alerts_test.yml").read_text()))
    assert alerts == tested == {"DMCodecHighErrorRate", "DMCodecLatencySLOBurn", "DMCodecQueueSaturated",
                                "DMCodecNotReady", "DMCodecNoTraffic"}
