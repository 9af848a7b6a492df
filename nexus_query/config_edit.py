"""Editing the config file in use in place: add a tenant, create an API key, list tenants.

The file is read and written with ruamel.yaml's round-trip mode, so the user's comments, key order and
flow style stay as they wrote them. Every edit is checked by parsing the result as a ``NexusConfig`` before
it replaces the file (atomically), so a running server reloading it never sees a half-written or invalid
file. With no config file in use yet, the first edit starts one from the shipped default in the data root.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from nexus_query.config import (
    DEFAULT_CONFIG_PATH,
    NexusConfig,
    config_path,
    load_config,
    own_config_path,
)
from nexus_query.context import validate_id
from nexus_query.errors import ConfigError, InvalidRequest
from nexus_query.paths import write_atomic
from nexus_query.routing import hash_api_key

KEY_PREFIX = "nx_"  # says what a leaked string is (secret scanners match on prefixes)


@dataclass(frozen=True)
class TenantAdded:
    tenant_id: str
    environment: str
    path: Path
    started: bool  # True: the config file was started from the shipped default by this edit


@dataclass(frozen=True)
class KeyCreated:
    key: str  # shown once; only its hash is stored
    tenant_id: str
    project_id: str
    environment: str
    path: Path


@dataclass(frozen=True)
class TenantInfo:
    environment: str
    tenant_id: str
    store_uri: str | None  # None: no vector store (queries get nexus_store.missing_route)
    keys: int


def _yaml() -> YAML:
    """Round-trip YAML that writes the shipped default back byte for byte (indents, nulls, long lines)."""
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    y.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def editable_config_path() -> tuple[Path, bool]:
    """The file to edit and whether it must first be started from the shipped default: the shipped
    default itself is never edited (it belongs to the installed package)."""
    path = config_path()
    if path.resolve() == DEFAULT_CONFIG_PATH.resolve():
        return own_config_path(), True
    return path, not path.is_file()


def _flow(**values: Any) -> CommentedMap:
    m = CommentedMap(values)
    m.fa.set_flow_style()
    return m


def _edit(path: Path, start: bool, change: Any) -> None:
    """Apply ``change(document)`` to the file at ``path`` and write it atomically once it parses."""
    text = DEFAULT_CONFIG_PATH.read_text() if start else path.read_text()
    y = _yaml()
    doc = y.load(text)
    change(doc)
    out = io.StringIO()
    y.dump(doc, out)
    try:
        NexusConfig.from_dict(YAML(typ="safe").load(out.getvalue()) or {}, source=str(path),
                              base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"the edit would make {path} invalid, so it was not written: {exc}",
                          source=str(path)) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(None, str(path), out.getvalue().encode("utf-8"), local=True)


def add_tenant(tenant_id: str, *, store_uri: str | None = None, environment: str = "dev") -> TenantAdded:
    """Route ``tenant_id`` in ``environment``: the environment's default stores, or a vector store at
    ``store_uri`` (a LanceDB root: a folder or ``s3://bucket/prefix``). A new environment gets its own
    folders under the data root."""
    validate_id(tenant_id, "tenant_id")
    validate_id(environment, "environment")
    path, start = editable_config_path()

    def change(doc: Any) -> None:
        envs = doc.setdefault("environments", CommentedMap())
        if environment not in envs:
            envs[environment] = CommentedMap(defaults=CommentedMap(
                nexus_store=_flow(backend="lancedb", uri=f"{{data_root}}/{environment}/lance", table_name="main"),
                nexus_blob_store=_flow(protocol="file", bucket=f"{{data_root}}/{environment}/blobs", prefix=""),
                nexus_projection_store=_flow(protocol="file", bucket=f"{{data_root}}/{environment}/projections",
                                             prefix="")))
        env = envs[environment]
        if env.get("tenants") is None:
            env["tenants"] = CommentedMap()
        if tenant_id in env["tenants"]:
            raise InvalidRequest(f"tenant {tenant_id!r} already exists in environment {environment!r} of {path}",
                                 tenant=tenant_id, environment=environment, config=str(path))
        routes = _flow()
        if store_uri:
            routes = CommentedMap(nexus_store=_flow(backend="lancedb", uri=store_uri, table_name="main"))
        env["tenants"][tenant_id] = routes

    _edit(path, start, change)
    return TenantAdded(tenant_id, environment, path, start)


def create_key(tenant_id: str, *, project_id: str = "default", environment: str = "dev") -> KeyCreated:
    """A new random API key for a tenant of the config in use; only its SHA-256 goes into the file."""
    validate_id(project_id, "project_id")
    path, start = editable_config_path()
    config = load_config()
    env = config.environments.get(environment)
    if env is None or tenant_id not in env.tenants:
        raise InvalidRequest(f"tenant {tenant_id!r} is not in environment {environment!r} of {path}: "
                             f"add it first with `nexus tenants add {tenant_id}`",
                             tenant=tenant_id, environment=environment, config=str(path))
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = _flow(sha256=hash_api_key(key), tenant_id=tenant_id, project_id=project_id, environment=environment)

    def change(doc: Any) -> None:
        if doc.get("api_keys") is None:
            doc["api_keys"] = []
        doc["api_keys"].append(entry)

    _edit(path, start, change)
    return KeyCreated(key, tenant_id, project_id, environment, path)


def list_tenants() -> tuple[Path, list[TenantInfo]]:
    """Every tenant of every environment of the config in use, with its vector store and key count."""
    config = load_config()
    rows = []
    for env_name, env in sorted(config.environments.items()):
        for tenant, routes in sorted(env.tenants.items()):
            keys = sum(1 for k in config.api_keys if k.tenant_id == tenant and k.environment == env_name)
            rows.append(TenantInfo(env_name, tenant, routes.nexus_store.uri if routes.nexus_store else None, keys))
    return Path(config.source), rows

