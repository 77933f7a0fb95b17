#!/usr/bin/env bash
# Checks that docker-compose.yml parses and defines the services and images we promise,
# consistently with deploy/local. (There is no Docker engine in CI to run it.)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet pyyaml
python3 - <<'PY'
import sys, yaml

with open("docker-compose.yml") as f:
    doc = yaml.safe_load(f)
services = doc.get("services", {})
errors = []
for name in ("kafka", "postgres", "api", "workers", "prometheus", "grafana"):
    if name not in services:
        errors.append(f"missing service {name}")
# The files the compose file mounts exist and parse; the dashboard queries real metrics.
import json, os
for path in ("deploy/prometheus/prometheus.yml", "deploy/grafana/provisioning/datasources/prometheus.yml",
             "deploy/grafana/provisioning/dashboards/seatline.yml"):
    with open(path) as f:
        yaml.safe_load(f)
with open("deploy/grafana/dashboards/seatline.json") as f:
    dashboard = json.load(f)
readme = open("README.md").read()
import re
for panel in dashboard["panels"]:
    for target in panel["targets"]:
        names = set(re.findall(r"([a-z][a-z_]+)(?:\{|\[)", target["expr"])) | set(re.findall(r"^([a-z][a-z_]+)$", target["expr"]))
        for name in names:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base not in ("rate", "sum", "increase", "histogram_quantile") and f"`{base}`" not in readme:
                errors.append(f"dashboard queries {base}, which the README's metrics table does not list")
with open("docs/asyncapi.yaml") as f:
    asyncapi = yaml.safe_load(f)
if not str(asyncapi.get("asyncapi", "")).startswith("3."):
    errors.append("docs/asyncapi.yaml is not AsyncAPI 3")
if not str(services.get("kafka", {}).get("image", "")).startswith("apache/kafka:"):
    errors.append("kafka must use the official apache/kafka image")
for name in ("api", "workers"):
    build = services.get(name, {}).get("build", {})
    if build.get("dockerfile") != "deploy/Dockerfile":
        errors.append(f"{name} must build from deploy/Dockerfile")
for name in ("api", "workers"):
    env = services.get(name, {}).get("environment", {})
    for var in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        if var not in env:
            errors.append(f"{name} lacks {var}")
ports = {p.split(":")[-2] + ":" + p.split(":")[-1] for s in services.values() for p in s.get("ports", [])}
for want in ("5432:5432", "9092:9092", "8080:8080"):
    if want not in ports:
        errors.append(f"port {want} not published as in deploy/local")
if errors:
    print("docker-compose.yml:", *errors, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("docker-compose.yml: ok, services:", ", ".join(sorted(services)))
PY
