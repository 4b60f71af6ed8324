"""The deployment files of infra/ validate offline and say what the README promises: one
non-root image with a health check, the demo on compose with two replicas behind nginx, and
Kubernetes manifests whose probes, references and secrets hold together."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import crossplane
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from gateway.api.pools import shared_variable
from gateway.api.settings import Settings
from gateway.kernel.sealing import new_master_key
from tests.kustomize import KustomizeError, Resource, render

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
BIN = Path(sys.executable).parent
# The oldest Kubernetes the manifests are meant for (preStop `sleep`: 1.30), and the newest.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
EXTERNAL = {("Secret", "coalition-secrets"), ("ConfigMap", "coalition-partners")}


def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(INFRA / "Dockerfile"))


def final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    instructions = parser.structure
    start = max(i for i, step in enumerate(instructions) if step["instruction"] == "FROM")
    return instructions[start:]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((INFRA / "compose.yaml").read_text())
    return data


def production() -> list[Resource]:
    return render(K8S / "overlays" / "production")


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def pod(resources: list[Resource], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(resources, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def settings_names() -> set[str]:
    """The environment variables the gateway reads (gateway/api/settings.py)."""
    source = (ROOT / "gateway" / "api" / "settings.py").read_text()
    # Every name in capitals the module quotes: each is read from the environment.
    return set(re.findall(r"\"([A-Z][A-Z0-9_]{2,})\"", source))


# The image


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(INFRA / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_builds_in_one_stage_and_runs_from_a_slim_second() -> None:
    parser = dockerfile()
    stages = [s["value"] for s in parser.structure if s["instruction"] == "FROM"]
    assert len(stages) >= 2
    assert all("slim" in stage for stage in stages), stages
    runtime = final_stage(parser)
    copies = [s["value"] for s in runtime if s["instruction"] == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies), copies


def test_the_image_runs_as_a_user_other_than_root() -> None:
    users = [
        s["value"].split(":")[0] for s in final_stage(dockerfile()) if s["instruction"] == "USER"
    ]
    assert users, "no USER in the final stage: the container would run as root"
    assert users[-1] not in {"root", "0"}


def test_the_image_checks_its_health_at_livez_and_serves_by_default() -> None:
    runtime = final_stage(dockerfile())
    checks = [s["value"] for s in runtime if s["instruction"] == "HEALTHCHECK"]
    assert len(checks) == 1 and "/livez" in checks[0]
    assert [s["value"] for s in runtime if s["instruction"] == "ENTRYPOINT"] == ['["coalition"]']
    assert [s["value"] for s in runtime if s["instruction"] == "CMD"] == ['["serve"]']


def test_the_build_context_keeps_out_everything_but_the_sources() -> None:
    ignore = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:1] == ["*"]
    for needed in ("!pyproject.toml", "!gateway/", "!partners/"):
        assert needed in ignore


# compose


def test_compose_validates_against_the_compose_specification() -> None:
    command = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [*command, str(INFRA / "compose.yaml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_servers_a_job_runner_a_load_balancer_and_postgres() -> None:
    services = compose()["services"]
    servers = [n for n, s in services.items() if s.get("command") == ["serve"]]
    assert len(servers) == 2, servers
    for name in servers:
        env = services[name]["environment"]
        assert env["COALITION_JOBS"] == "off"
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert services[name]["build"]["dockerfile"] == "infra/Dockerfile"
    assert [n for n, s in services.items() if s.get("command") == ["jobs"]] == ["jobs"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["nginx"]["ports"]
    # Migrations run once, before any server or runner.
    assert services["migrate"]["command"] == ["migrate"]
    for name in [*servers, "jobs"]:
        conditions = {
            service: dependency["condition"]
            for service, dependency in services[name]["depends_on"].items()
        }
        assert "service_completed_successfully" in conditions.values() or (
            conditions.get(servers[0]) == "service_healthy"
        ), (name, conditions)


def test_the_compose_environment_is_what_the_gateway_reads() -> None:
    services = compose()["services"]
    known = settings_names() | {"COALITION_DEVELOPMENT_POOL_HARBOUR"}
    env = services["jobs"]["environment"]
    assert set(env) <= known, set(env) - known
    Settings.from_env(env)  # the values parse (demo values: COALITION_ENV=development)


def test_the_demo_fits_in_the_database_connections() -> None:
    """Each server opens up to 1.5 x DB_POOL_SIZE connections, a runner or migrate 30."""
    services = compose()["services"]
    command = services["postgres"]["command"]
    limit = int(command[command.index("-c") + 1].removeprefix("max_connections="))
    needed = 0
    for service in services.values():
        if service.get("command") == ["serve"]:
            needed += int(service["environment"]["DB_POOL_SIZE"]) * 3 // 2
        elif service.get("command") in (["jobs"], ["migrate"]):
            needed += 30
    assert needed + 10 <= limit, (needed, limit)


def test_every_process_of_the_demo_shares_one_reference_partner() -> None:
    services = compose()["services"]
    port = re.search(r"port=(\d+)", services["harbour"]["command"][0])
    assert port is not None
    for name, service in services.items():
        if service.get("command") in (["serve"], ["jobs"]):
            url, token = service["environment"][shared_variable("harbour")].split()
            assert url == f"http://harbour:{port.group(1)}", name
            assert f"ReferencePartner('{token}'" in services["harbour"]["command"][0]


def test_nginx_sends_requests_to_both_replicas() -> None:
    mounted = [v for v in compose()["services"]["nginx"]["volumes"] if "nginx" in v]
    assert mounted == ["./nginx.compose.conf:/etc/nginx/conf.d/default.conf:ro"]
    upstreams = nginx_upstreams(INFRA / "nginx.compose.conf")
    servers = [n for n, s in compose()["services"].items() if s.get("command") == ["serve"]]
    assert sorted(upstreams["coalition_gateway"]) == sorted(f"{n}:8000" for n in servers)


def nginx_upstreams(path: Path) -> dict[str, list[str]]:
    """Parse ``path`` inside an ``http`` block as nginx would (directives, their contexts
    and argument counts checked); the servers of each upstream."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(path, Path(folder) / path.name)
        main = Path(folder) / "nginx.conf.main"
        main.write_text(f"events {{}}\nhttp {{ include {path.name}; }}\n")
        parsed = crossplane.parse(str(main), check_ctx=True, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]
    upstreams: dict[str, list[str]] = {}
    for config in parsed["config"]:
        for directive in config["parsed"]:
            if directive["directive"] == "upstream":
                block = directive["block"]
                upstreams[directive["args"][0]] = [
                    d["args"][0] for d in block if d["directive"] == "server"
                ]
    return upstreams


@pytest.mark.parametrize("name", ["nginx.conf", "nginx.compose.conf"])
def test_the_nginx_configurations_parse(name: str) -> None:
    assert nginx_upstreams(INFRA / name)


# Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_every_rendered_manifest_validates(overlay: str, version: str) -> None:
    for resource in render(K8S / overlay):
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_production_overlay_renders_every_part() -> None:
    kinds = {(r["kind"], r["metadata"]["name"]) for r in production()}
    assert {
        ("Deployment", "coalition-gateway"),
        ("Deployment", "coalition-jobs"),
        ("Service", "coalition-gateway"),
        ("HorizontalPodAutoscaler", "coalition-gateway"),
        ("PodDisruptionBudget", "coalition-gateway"),
        ("ConfigMap", "coalition-settings"),
        ("Ingress", "coalition-gateway"),
    } <= kinds
    namespaced = [r for r in production() if r["kind"] != "Namespace"]
    assert all(r["metadata"].get("namespace") == "coalition" for r in namespaced)


def test_a_patch_of_nothing_in_the_base_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{K8S / 'base'}]\npatches:\n  - path: p.yaml\n"
    )
    (tmp_path / "p.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: coalition-gatewy}\n"
    )
    with pytest.raises(KustomizeError, match="coalition-gatewy"):
        render(tmp_path)


def test_probes_point_at_livez_and_readyz_on_the_served_port() -> None:
    spec = pod(production(), "coalition-gateway")
    (server,) = spec["containers"]
    assert server["args"][0] == "serve"
    assert server["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert server["startupProbe"]["httpGet"]["path"] == "/livez"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert server[probe]["httpGet"]["port"] in ports
    settings = find(production(), "ConfigMap", "coalition-settings")["data"]
    assert ports["http"] == int(settings["PORT"])


def test_migrations_run_before_the_servers_and_the_jobs_run_apart() -> None:
    resources = production()
    spec = pod(resources, "coalition-gateway")
    assert [c["args"] for c in spec["initContainers"]] == [["migrate"]]
    assert [c["args"] for c in pod(resources, "coalition-jobs")["containers"]] == [["jobs"]]
    settings = find(resources, "ConfigMap", "coalition-settings")["data"]
    assert settings["COALITION_JOBS"] == "off"
    assert settings["COALITION_MIGRATE_ON_START"] == "false"


def test_the_pods_run_as_non_root_without_privileges() -> None:
    resources = production()
    for name in ("coalition-gateway", "coalition-jobs"):
        spec = pod(resources, name)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["image"] == "registry.example.com/coalition/gateway:0.1.0"


def test_selectors_and_targets_name_what_exists() -> None:
    resources = production()
    server_labels = find(resources, "Deployment", "coalition-gateway")["spec"]["template"]
    jobs_labels = find(resources, "Deployment", "coalition-jobs")["spec"]["template"]
    for kind, selector in [
        ("Service", find(resources, "Service", "coalition-gateway")["spec"]["selector"]),
        ("PDB", find(resources, "PodDisruptionBudget", "coalition-gateway")["spec"]["selector"]),
    ]:
        labels = selector.get("matchLabels", selector)
        assert labels.items() <= server_labels["metadata"]["labels"].items(), kind
        assert not labels.items() <= jobs_labels["metadata"]["labels"].items(), kind
    hpa = find(resources, "HorizontalPodAutoscaler", "coalition-gateway")["spec"]
    find(resources, hpa["scaleTargetRef"]["kind"], hpa["scaleTargetRef"]["name"])
    backend = find(resources, "Ingress", "coalition-gateway")["spec"]["rules"][0]["http"]
    service = backend["paths"][0]["backend"]["service"]
    ports = find(resources, "Service", service["name"])["spec"]["ports"]
    assert service["port"]["name"] in {p["name"] for p in ports}
    for name in ("coalition-gateway", "coalition-jobs"):
        find(resources, "ServiceAccount", pod(resources, name)["serviceAccountName"])


def test_the_autoscaler_owns_the_replicas_and_drains_keep_some() -> None:
    resources = production()
    hpa = find(resources, "HorizontalPodAutoscaler", "coalition-gateway")["spec"]
    pdb = find(resources, "PodDisruptionBudget", "coalition-gateway")["spec"]
    assert "replicas" not in find(resources, "Deployment", "coalition-gateway")["spec"]
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert 1 <= pdb["minAvailable"] < hpa["minReplicas"]


def referenced(spec: dict[str, Any]) -> set[tuple[str, str]]:
    names: set[tuple[str, str]] = set()
    for container in spec["containers"] + spec.get("initContainers", []):
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                names.add(("Secret", source["secretRef"]["name"]))
            if "configMapRef" in source:
                names.add(("ConfigMap", source["configMapRef"]["name"]))
        for variable in container.get("env", []):
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if key in variable.get("valueFrom", {}):
                    names.add((kind, variable["valueFrom"][key]["name"]))
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            names.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            names.add(("Secret", volume["secret"]["secretName"]))
    return names


def test_secrets_are_referenced_and_never_in_the_manifests() -> None:
    resources = production()
    defined = {(r["kind"], r["metadata"]["name"]) for r in resources}
    assert not any(kind == "Secret" for kind, _ in defined)
    for name in ("coalition-gateway", "coalition-jobs"):
        wanted = referenced(pod(resources, name))
        assert ("Secret", "coalition-secrets") in wanted
        assert wanted - defined <= EXTERNAL, wanted - defined - EXTERNAL
        for container in pod(resources, name)["containers"]:
            assert all("value" not in variable for variable in container.get("env", []))
    settings = find(resources, "ConfigMap", "coalition-settings")["data"]
    assert not [n for n in settings if re.search("SECRET|TOKEN|PASSWORD|DATABASE_URL", n)]


def test_no_file_under_k8s_holds_a_password() -> None:
    for path in K8S.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), f"{path}: credentials"
            assert not re.search(r"(?im)^[\s-]*(\w+_)?(password|secret|token)\s*[:=]", text), path


def test_the_production_settings_are_what_the_gateway_reads_and_accepts() -> None:
    data = find(production(), "ConfigMap", "coalition-settings")["data"]
    assert set(data) <= settings_names(), set(data) - settings_names()
    # What the Secret holds (infra/README.md lists its keys).
    secrets = {
        "DATABASE_URL": "postgresql://gateway@db/coalition",
        "COALITION_SESSION_SECRET": "s" * 32,
        "COALITION_METRICS_TOKEN": "t" * 48,
        "COALITION_MASTER_KEY": new_master_key(),
    }
    settings = Settings.from_env({**data, **secrets})
    assert settings.production and not settings.demo_data and not settings.jobs
    assert settings.metrics == "token" and settings.log_format == "json"
    assert settings.public_url.startswith("https://")


@pytest.mark.parametrize(
    ("resource", "version"),
    [
        (
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "x"},
                "spec": {"minAvailable": 1, "selectr": {}},
            },
            "1.30.0",
        ),
        (
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "x"},
                "spec": {"maxReplicas": 2},
            },
            "1.30.0",
        ),
    ],
)
def test_the_validator_refuses_a_broken_manifest(resource: dict[str, Any], version: str) -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(resource, version, strict=True)
