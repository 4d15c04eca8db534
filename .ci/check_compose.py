"""No Docker engine runs in CI, so the compose file is checked by reading it: the services,
their health checks, the API waiting for a healthy database, the named volume, and every
variable the README documents for the API."""
import pathlib
import re
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
compose = yaml.safe_load((root / "docker-compose.yml").read_text())
readme = (root / "README.md").read_text()
problems = []

services = compose.get("services", {})
for name in ("api", "db"):
    if name not in services:
        problems.append(f"service {name!r} is missing")
    elif "healthcheck" not in services[name]:
        problems.append(f"service {name!r} has no health check")
api = services.get("api", {})
if api.get("depends_on", {}).get("db", {}).get("condition") != "service_healthy":
    problems.append("api must wait for db with condition: service_healthy")
volumes = compose.get("volumes") or {}
if not any(v.split(":")[0] in volumes for v in services.get("db", {}).get("volumes", [])):
    problems.append("db must keep its data in a named volume")
env = api.get("environment", {})
if not str(env.get("DATABASE_URL", "")).startswith("postgres://"):
    problems.append("api DATABASE_URL must be a postgres:// URL")
for var in env:
    if f"`{var}`" not in readme:
        problems.append(f"api variable {var} is not documented in README.md")
if not (root / "Dockerfile").exists():
    problems.append("Dockerfile is missing")
elif len(re.findall(r"^FROM ", (root / "Dockerfile").read_text(), re.M)) < 2:
    problems.append("Dockerfile must be multi-stage")

if problems:
    print("docker-compose.yml check failed:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"docker-compose.yml: {len(services)} services, health checks and variables in order")
