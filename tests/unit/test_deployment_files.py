"""The deployment files: Dockerfile, docker-compose.yml and deploy/. Docker cannot run here, so
their structure is checked instead: the compose topology (services, start order, shared
settings), the settings the replicas get being ones Tollgate knows, nginx's directives for
large streamed uploads (and `nginx -t` on the file), and the image's user, health check and
entry point. tests/deployment/ runs the same topology as processes."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from registry.config import ENV_PREFIX, Settings, env_keys, load_settings
from registry.fixture.processes import free_port
from tests.deployment.topology import (
    NGINX_CONF,
    NGINX_HINT,
    REPLICAS,
    ROOT,
    load_compose,
    nginx_binary,
    render_nginx_conf,
)

ONE_SHOTS = ("migrate", "create-bucket")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def nginx_conf(services) -> tuple[Path, str]:
    mount = next(v for v in services["nginx"]["volumes"] if v.endswith(":/etc/nginx/nginx.conf:ro"))
    path = ROOT / mount.split(":")[0]
    return path, path.read_text()


def directives(conf: str) -> list[tuple[str, ...]]:
    """nginx directives as word tuples (comments dropped; blocks flattened)."""
    text = re.sub(r"#[^\n]*", "", conf)
    return [tuple(part.split()) for part in re.split(r"[;{}]", text) if part.strip()]


def conditions(service: dict) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


# ------------------------------------------------------------------------------ compose


def test_compose_has_the_whole_topology(services):
    assert set(services) == {"postgres", "seaweedfs", "create-bucket", "migrate", *REPLICAS,
                             "nginx"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["seaweedfs"]["image"].startswith("chrislusf/seaweedfs")
    assert services["nginx"]["image"].startswith("nginx:")
    assert services["nginx"]["ports"] == ["5000:80"]
    for name in (*REPLICAS, *ONE_SHOTS):
        assert services[name]["image"] == "tollgate:local"
        assert services[name]["build"] == "."
    assert not any("ports" in services[name] for name in REPLICAS), "only nginx is published"


def test_start_order(services):
    assert conditions(services["migrate"]) == {"postgres": "service_healthy"}
    assert conditions(services["create-bucket"]) == {"seaweedfs": "service_healthy"}
    for name in REPLICAS:
        assert conditions(services[name]) == {
            "migrate": "service_completed_successfully",
            "create-bucket": "service_completed_successfully",
            "postgres": "service_healthy",
        }
        assert services[name]["restart"] == "unless-stopped"
    assert conditions(services["nginx"]) == {name: "service_healthy" for name in REPLICAS}
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no"
    for name in ("postgres", "seaweedfs"):
        assert services[name]["healthcheck"]["test"]


def test_replicas_and_one_shots_share_one_configuration(services):
    environments = [services[name]["environment"] for name in (*REPLICAS, *ONE_SHOTS)]
    assert all(env == environments[0] for env in environments)
    assert services["migrate"]["command"] == ["migrate"]
    for name in REPLICAS:
        assert services[name]["command"] == ["serve"]
        # the token signing key is in the data dir: one volume for both replicas
        assert services[name]["volumes"] == ["tollgate-data:/data"]


def test_the_replicas_settings_are_known_to_tollgate(services):
    env = {k: str(v) for k, v in services["tollgate-a"]["environment"].items()}
    known = set(env_keys(Settings()))
    ours = {name for name in env if name.startswith(ENV_PREFIX)}
    assert ours <= known, f"unknown settings: {sorted(ours - known)}"
    assert set(env) == ours
    settings = load_settings(environ=env)
    assert settings.http.trust_forwarded is True  # nginx's X-Forwarded-*: only it reaches them
    assert settings.database_url.startswith("postgresql+psycopg://tollgate:")
    assert settings.database_url.endswith("@postgres:5432/tollgate")
    assert settings.auth.mode == "token"
    assert settings.storage.driver == "s3"
    s3 = settings.storage.s3
    assert (s3.bucket, s3.endpoint_url, s3.addressing_style) == (
        "tollgate", "http://seaweedfs:8333", "path")
    # seaweedfs:8333 resolves only inside compose's network: presigned blob URLs are signed
    # for the published port instead
    assert s3.redirect is True
    assert s3.public_endpoint_url == "http://localhost:8333"


def test_presigned_urls_name_the_published_s3_port(services):
    env = load_settings(environ={k: str(v) for k, v in
                                 services["tollgate-a"]["environment"].items()}).storage.s3
    published = [p.split(":") for p in services["seaweedfs"]["ports"]]
    public_port = env.public_endpoint_url.rsplit(":", 1)[1]
    internal_port = env.endpoint_url.rsplit(":", 1)[1]
    assert [public_port, internal_port] in published


def test_database_credentials_match(services):
    env = services["postgres"]["environment"]
    url = services["tollgate-a"]["environment"]["TOLLGATE_DATABASE_URL"]
    assert url == (f"postgresql+psycopg://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
                   f"@postgres:5432/{env['POSTGRES_DB']}")


def test_seaweedfs_runs_s3_with_tollgates_credentials(compose, services):
    seaweed = services["seaweedfs"]
    command = seaweed["command"]
    assert seaweed["entrypoint"] == ["/usr/bin/weed"]
    assert command[0] == "server" and "-s3" in command and "-s3.port=8333" in command
    config_path = next(a.split("=", 1)[1] for a in command if a.startswith("-s3.config="))
    mounted = {c["target"]: c["source"] for c in seaweed["configs"]}
    identities = json.loads(compose["configs"][mounted[config_path]]["content"])["identities"]
    env = services["tollgate-a"]["environment"]
    credentials = {(c["accessKey"], c["secretKey"])
                   for identity in identities for c in identity["credentials"]
                   if {"Read", "Write", "List"} <= set(identity["actions"])}
    assert (env["TOLLGATE_STORAGE_S3_ACCESS_KEY_ID"],
            env["TOLLGATE_STORAGE_S3_SECRET_ACCESS_KEY"]) in credentials


def test_create_bucket_script_is_mounted_and_compiles(services):
    service = services["create-bucket"]
    source, target = service["volumes"][0].split(":")[:2]
    assert service["entrypoint"] == ["python", target]
    compile((ROOT / source).read_text(), source, "exec")


# ------------------------------------------------------------------------------ nginx


def test_nginx_streams_large_uploads_to_both_replicas(nginx_conf):
    _, conf = nginx_conf
    found = directives(conf)
    for directive in [("client_max_body_size", "0"), ("proxy_request_buffering", "off"),
                      ("proxy_buffering", "off"), ("proxy_http_version", "1.1"),
                      ("proxy_set_header", "Host", "$http_host"),
                      ("proxy_set_header", "X-Forwarded-Proto", "$scheme"),
                      ("proxy_set_header", "X-Forwarded-For", "$remote_addr"),
                      ("proxy_pass", "http://tollgate")]:
        assert directive in found, f"nginx.conf lacks `{' '.join(directive)};`"
    for timeout in ("proxy_read_timeout", "proxy_send_timeout", "client_body_timeout"):
        value = next(d[1] for d in found if d[0] == timeout)
        assert int(value.rstrip("s")) >= 300, f"{timeout} {value} is too short for big layers"
    servers = [d[1] for d in found if d[0] == "server" and len(d) > 1]
    assert servers == [f"{name}:5000" for name in REPLICAS]


def test_nginx_accepts_its_configuration(nginx_conf, tmp_path):
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip(NGINX_HINT)
    path, _ = nginx_conf
    assert path == NGINX_CONF  # the file the rendering (and tests/deployment) starts from
    # no compose network here to resolve the service names, nor a free port 80
    conf = render_nginx_conf(["127.0.0.1:5000"] * 2, f"127.0.0.1:{free_port()}", tmp_path)
    (tmp_path / "nginx.conf").write_text(conf)
    result = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf"),
                             "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------ Dockerfile


def final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages[-1]


def test_dockerfile_runs_tollgate_serve_as_a_non_root_user_with_a_health_check():
    stage = final_stage()
    values: dict[str, list[str]] = {}
    for instruction, arguments in stage:
        values.setdefault(instruction, []).append(arguments)
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", values["FROM"][0])
    user = values["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"
    assert json.loads(values["ENTRYPOINT"][-1]) == ["tollgate"]
    assert json.loads(values["CMD"][-1]) == ["serve"]
    healthcheck = values["HEALTHCHECK"][-1]
    assert "/health" in healthcheck and "TOLLGATE_PORT" in healthcheck
    assert json.loads(values["VOLUME"][-1]) == ["/data"]
    assert values["EXPOSE"] == ["5000"]
    env = " ".join(values["ENV"])
    assert "TOLLGATE_DATA_DIR=/data" in env and "TOLLGATE_PORT=5000" in env
    assert "TOLLGATE_HOST=0.0.0.0" in env


def test_the_image_gets_every_package_of_tollgate():
    """The image installs a wheel (not an editable checkout): a package missing from
    pyproject's list would be missing there only."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    present = {".".join(path.parent.relative_to(ROOT).parts)
               for path in (ROOT / "registry").rglob("__init__.py")}
    assert present <= listed, f"not in pyproject's packages: {sorted(present - listed)}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!README.md", "!registry/", "!migrations/"):
        assert needed in ignored
