"""Render a kustomization the way `kubectl apply -k` does, for the parts infra/k8s uses:
resources (files and directories), configMapGenerator (env files, merged by an overlay),
images, namespace, labels and strategic-merge patches. Anything else in a kustomization
is refused, so the tests cannot pass over a feature they do not render. Generated names
get no hash suffix here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "images",
    "namespace",
    "labels",
    "patches",
}
# The patch merge keys of the lists infra/k8s patches (Kubernetes' strategic merge).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "envFrom": None,
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "topologySpreadConstraints": "topologyKey",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}

Resource = dict[str, Any]


class KustomizeError(Exception):
    pass


def load_documents(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def read_env_file(path: Path) -> dict[str, str]:
    data: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name:
            raise KustomizeError(f"{path}:{number}: not NAME=value")
        data[name] = value
    return data


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = strategic_merge(target[key], value, key) if key in target else value
        return merged
    key = MERGE_KEYS.get(field)
    if isinstance(target, list) and isinstance(patch, list) and key is not None:
        merged_list = list(target)
        added = []
        for item in patch:
            at = [i for i, old in enumerate(merged_list) if old.get(key) == item.get(key)]
            if at:
                merged_list[at[0]] = strategic_merge(merged_list[at[0]], item, "")
            else:
                added.append(item)
        return added + merged_list  # kustomize puts a patch's new items first
    return copy.deepcopy(patch)


def _generate(root: Path, spec: dict[str, Any]) -> dict[str, str]:
    data: dict[str, str] = {}
    for env in spec.get("envs", []):
        data.update(read_env_file(root / env))
    for literal in spec.get("literals", []):
        name, _, value = literal.partition("=")
        data[name] = value
    unknown = set(spec) - {"name", "envs", "literals", "behavior"}
    if unknown:
        raise KustomizeError(f"{root}: configMapGenerator {sorted(unknown)} not rendered")
    return data


def _find(resources: list[Resource], kind: str, name: str) -> Resource:
    for resource in resources:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    raise KustomizeError(f"no {kind} {name!r} to patch or merge into")


def _pod_specs(resource: Resource) -> list[dict[str, Any]]:
    template = resource.get("spec", {}).get("template", {})
    if "jobTemplate" in resource.get("spec", {}):
        template = resource["spec"]["jobTemplate"]["spec"]["template"]
    return [template["spec"]] if "spec" in template else []


def render(root: Path) -> list[Resource]:
    """The resources `kubectl kustomize root` would print (without hash suffixes)."""
    path = root / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{root}: no kustomization.yaml")
    kustomization = yaml.safe_load(path.read_text())
    unknown = set(kustomization) - KNOWN
    if unknown:
        raise KustomizeError(f"{path}: {sorted(unknown)} not rendered by this test")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        target = (root / entry).resolve()
        if target.is_dir():
            resources.extend(render(target))
        elif target.is_file():
            resources.extend(load_documents(target))
        else:
            raise KustomizeError(f"{path}: resource {entry} does not exist")
    for spec in kustomization.get("configMapGenerator", []):
        data = _generate(root, spec)
        if spec.get("behavior", "create") == "merge":
            _find(resources, "ConfigMap", spec["name"])["data"].update(data)
        else:
            meta = {"name": spec["name"]}
            resources.append(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
            )
    for entry in kustomization.get("patches", []):
        if set(entry) != {"path"}:
            raise KustomizeError(f"{path}: only patches by path are rendered, got {entry}")
        for patch in load_documents(root / entry["path"]):
            original = _find(resources, patch["kind"], patch["metadata"]["name"])
            resources[resources.index(original)] = strategic_merge(original, patch)
    for image in kustomization.get("images", []):
        for resource in resources:
            for pod in _pod_specs(resource):
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    if container["image"].split(":")[0] == image["name"]:
                        name = image.get("newName", image["name"])
                        container["image"] = f"{name}:{image['newTag']}"
    for label in kustomization.get("labels", []):
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label["pairs"])
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources
