"""The answers that do not read the store: GET /api/public/projects and /api/public/health."""

from __future__ import annotations

from typing import Any

from autoops_cli.local_api.query.common import PROJECT_ID

PROJECT_NAME = "autoops local store"
ORGANIZATION = {"id": "local", "name": "autoops"}


def get_projects() -> dict[str, Any]:
    """GET /api/public/projects: the one project a project key sees (no retention set)."""
    project = {"id": PROJECT_ID, "name": PROJECT_NAME, "organization": dict(ORGANIZATION)}
    return {"data": [{**project, "metadata": {}}]}


def health(version: str) -> dict[str, Any]:
    """GET /api/public/health."""
    return {"status": "OK", "version": version}
