"""Renders the Helm chart and validates it against Kubernetes schemas; run by the tools venv.

The deploy tests run this with ``.tools/deploy-venv/bin/python`` (which holds Helm's engine
from the ``helm-python-sdk`` package and the schemas of ``kubernetes-validate``), not with
the project's interpreter, and read its JSON answer:
``{"ok": true, "manifests": {path: yaml}, "lint": [...], "schema": {"name": "ok" | error}}``
or ``{"ok": false, "error": "..."}`` when rendering fails.

    python chart_tool.py CHART VALUES_FILE RELEASE NAMESPACE KUBERNETES_VERSION
"""

from __future__ import annotations

import json
import sys

import helm_python as helm
import kubernetes_validate
import yaml


def main(chart_dir: str, values_file: str, release: str, namespace: str, version: str) -> None:
    with open(values_file) as stream:
        values = yaml.safe_load(stream) or {}
    try:
        manifests = helm.Chart.load(chart_dir).render(
            values, name=release, namespace=namespace, is_install=True
        )
    except helm.HelmError as error:
        print(json.dumps({"ok": False, "error": str(error)}))
        return
    lint = helm.lint(chart_dir, values, strict=True, kube_version=f"v{version}")
    schema: dict[str, str] = {}
    for path, text in manifests.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if not document:
                continue
            name = f"{document['kind']}/{document['metadata']['name']}"
            try:
                kubernetes_validate.validate(document, version, strict=True)
                schema[name] = "ok"
            except kubernetes_validate.SchemaNotFoundError:
                schema[name] = "no schema"
            except kubernetes_validate.ValidationError as error:
                schema[name] = f"invalid: {error.message} at {list(error.path)}"
    print(json.dumps({"ok": True, "manifests": manifests, "lint": lint, "schema": schema}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
