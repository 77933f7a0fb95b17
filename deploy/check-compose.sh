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
for name in ("kafka", "postgres", "api", "workers"):
    if name not in services:
        errors.append(f"missing service {name}")
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
