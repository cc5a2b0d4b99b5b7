"""The kubeconfig handed to kubectl, the kubernetes client and the product under test."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

CLUSTER_NAME = "debugx-test"
ADMIN_CONTEXT = "debugx-test"
LIMITED_CONTEXT = "debugx-limited"


def write_kubeconfig(
    path: Path, server: str, ca_pem: bytes, admin_token: str, limited_token: str, namespace: str = "default"
) -> Path:
    ca_data = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [
            {"name": "debugx-admin", "user": {"token": admin_token}},
            {"name": "debugx-limited", "user": {"token": limited_token}},
        ],
        "contexts": [
            {
                "name": ADMIN_CONTEXT,
                "context": {"cluster": CLUSTER_NAME, "user": "debugx-admin", "namespace": namespace},
            },
            {
                "name": LIMITED_CONTEXT,
                "context": {"cluster": CLUSTER_NAME, "user": "debugx-limited", "namespace": namespace},
            },
        ],
        "current-context": ADMIN_CONTEXT,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # The file holds bearer tokens: keep it private like kubectl does.
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
