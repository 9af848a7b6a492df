"""The one configuration file: routes per environment and tenant, API keys, embedder, cursor secret.

Values may use ``${VAR}`` / ``${VAR:-default}`` (environment) and ``{data_root}`` placeholders, so one
file serves a laptop and a deployment that injects secrets through the environment.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from nexus_query.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")
CONFIG_ENV_VAR = "NEXUS_CONFIG"
HOME_ENV_VAR = "NEXUS_HOME"
DATA_DIR_NAME = ".nexus"
RESOURCE_KINDS = ("nexus_store", "nexus_blob_store", "nexus_projection_store")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            found = os.environ.get(name)
            if found is None:
                if default is None:
                    raise ConfigError(f"config refers to ${{{name}}}, which is not set", variable=name)
                return default
            if name == HOME_ENV_VAR and found:  # a path typed in a shell means that shell's folder
                return str(Path(found).expanduser().absolute())
            return found

        return _ENV_REF.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v) for v in value]
    return value


@dataclass(frozen=True)
class ObjectStoreOptions:
    """Connection settings for object storage; credentials default to the usual AWS_* variables."""

    endpoint: str | None = None
    region: str | None = None
    allow_http: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> ObjectStoreOptions:
        raw = {k: v for k, v in (raw or {}).items() if v not in (None, "")}
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown storage_options: {sorted(unknown)}")
        if "allow_http" in raw:
            raw["allow_http"] = str(raw["allow_http"]).lower() in ("1", "true", "yes")
        return cls(**raw)

    def for_lance(self) -> dict[str, str]:
        opts = {
            "aws_endpoint": self.endpoint,
            "aws_region": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
            "allow_http": "true" if self.allow_http else None,
        }
        return {k: v for k, v in opts.items() if v}

    def for_fsspec(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.endpoint:
            opts["endpoint_url"] = self.endpoint
        if self.access_key_id:
            opts["key"] = self.access_key_id
        if self.secret_access_key:
            opts["secret"] = self.secret_access_key
        if self.session_token:
            opts["token"] = self.session_token
        if self.region:
            opts["client_kwargs"] = {"region_name": self.region}
        return opts


@dataclass(frozen=True)
class StoreRoute:
    """``nexus_store``: a LanceDB root; spaces live at ``{uri}/{tenant}/{project}/{space}.lance``."""

    uri: str
    table_name: str = "main"
    backend: str = "lancedb"
    storage: ObjectStoreOptions = field(default_factory=ObjectStoreOptions)


@dataclass(frozen=True)
class FileRoute:
    """``nexus_blob_store`` / ``nexus_projection_store``: an fsspec location."""

    protocol: str
    bucket: str
    prefix: str = ""
    storage: ObjectStoreOptions = field(default_factory=ObjectStoreOptions)

    @property
    def root(self) -> str:
        """The location without the protocol, as fsspec filesystems take paths."""
        parts = [self.bucket.rstrip("/"), self.prefix.strip("/")]
        return "/".join(p for p in parts if p)


@dataclass(frozen=True)
class TenantRoutes:
    nexus_store: StoreRoute | None = None
    nexus_blob_store: FileRoute | None = None
    nexus_projection_store: FileRoute | None = None


@dataclass(frozen=True)
class ApiConfig:
    """Limits of the HTTP API (``api:`` in the config). ``None``: no limit of that kind."""

    max_body_bytes: int = 32 * 2**20            # ingest bodies, counted while read; 413 beyond
    max_json_body_bytes: int = 2**20            # every other route's body (query, assemble, erase, ...)
    max_items_per_batch: int = 1000
    requests_per_minute: int | None = None      # per API key, unless its entry says otherwise; 429 beyond
    max_rows_per_space: int | None = None       # rows a tenant space may hold (and its pending batches)
    max_landing_bytes_per_day: int | None = None  # bytes a tenant may land per UTC day; 429 beyond

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_json_body_bytes", "max_items_per_batch", "requests_per_minute",
                     "max_rows_per_space", "max_landing_bytes_per_day"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"api.{name} must be a positive integer or null, got {value!r}")


@dataclass(frozen=True)
class ApiKeyEntry:
    sha256: str
    tenant_id: str
    project_id: str = "default"
    environment: str = "dev"
    requests_per_minute: int | None = None  # this key's own rate limit (else api.requests_per_minute)


@dataclass(frozen=True)
class RemoteEmbedderConfig:
    base_url: str = ""
    api_key: str = ""
    model: str = ""
    dimension: int = 0
    max_retries: int = 5
    backoff_seconds: float = 0.5
    timeout_seconds: float = 30.0
    # Tokens a tenant may spend per calendar month; "default" applies to tenants not listed.
    budgets: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbedderConfig:
    provider: str = "auto"  # onnx-int8 where onnxruntime is installed, else local (embeddings.resolved_provider_name)
    model: str = "all-MiniLM-L6-v2"
    device: str = "cpu"
    batch_size: int = 64
    remote: RemoteEmbedderConfig = field(default_factory=RemoteEmbedderConfig)


@dataclass(frozen=True)
class CursorConfig:
    secret: str = ""
    ttl_seconds: int = 86_400


@dataclass(frozen=True)
class LinksConfig:
    """Capability links to pictures and maps (``links:``): where ``nexus serve`` is reached from a browser
    (the Dagster UI), and how long a link opens its file."""

    public_url: str = "http://127.0.0.1:8000"
    ttl_days: int = 30

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^\s/]+", self.public_url or ""):
            raise ConfigError(f"links.public_url must be an http(s) URL, got {self.public_url!r}")
        if isinstance(self.ttl_days, bool) or not isinstance(self.ttl_days, int) or self.ttl_days < 1:
            raise ConfigError(f"links.ttl_days must be a positive integer, got {self.ttl_days!r}")


@dataclass(frozen=True)
class ServingConfig:
    """Bounds per query process (API replica, notebook), so its memory and open handles stay flat however
    many spaces it serves: least recently used entries go first."""

    snapshot_cache_mb: int = 2048  # in-memory snapshots of table versions (nexus_query.store.snapshots)
    max_snapshots: int = 4096  # ... and at most this many of them (many small spaces)
    max_open_databases: int = 256  # LanceDB connections, one per tenant project folder
    lance_index_cache_mb: int = 1024  # LanceDB's own caches, shared by every space of the process
    lance_metadata_cache_mb: int = 256

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> ServingConfig:
        raw = dict(raw or {})
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown serving settings: {sorted(unknown)}")
        values = {k: int(v) for k, v in raw.items()}
        if any(v < 1 for v in values.values()):
            raise ConfigError("serving settings must be positive integers")
        return cls(**values)


@dataclass(frozen=True)
class EnvironmentConfig:
    tenants: dict[str, TenantRoutes]
    global_routes: TenantRoutes


@dataclass(frozen=True, eq=False)  # hashed by identity: the registry cache keys on it
class NexusConfig:
    data_root: Path
    environments: dict[str, EnvironmentConfig]
    api_keys: tuple[ApiKeyEntry, ...]
    embedder: EmbedderConfig
    cursor: CursorConfig
    source: str = "<memory>"
    api: ApiConfig = field(default_factory=ApiConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    links: LinksConfig = field(default_factory=LinksConfig)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "<memory>",
                  base_dir: Path | None = None) -> NexusConfig:
        """``base_dir``: what a relative ``data_root`` is relative to (the config file's folder; for a
        config given as a dict, the default data root's parent)."""
        try:
            return _parse(_expand_env(raw), source, base_dir)
        except ConfigError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(f"invalid Nexus config {source}: {exc}", source=source) from exc


def _number_or_none(value: Any) -> Any:
    """Limits read from the environment arrive as text: "" means no limit, digits a number."""
    if isinstance(value, str):
        return None if value.strip() in ("", "null", "none") else int(value)
    return value


def default_data_root() -> Path:
    """Where the embedded default keeps its data when neither the config nor ``NEXUS_HOME`` says:
    ``.nexus/`` in the source checkout this package runs from (what ``make demo`` fills), else
    ``$XDG_DATA_HOME/nexus`` (``~/.local/share/nexus``) for an installed package. Never the current
    folder: a notebook started in ``examples/`` must find the same data as the shell in the checkout."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / DATA_DIR_NAME
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "nexus"


def resolve_data_root(value: Any, base_dir: Path | None) -> Path:
    """An empty value means ``default_data_root()``; a relative one is relative to ``base_dir`` (the
    folder of the config file that names it), never to the current working directory."""
    text = "" if value is None else str(value).strip()
    if not text:
        return default_data_root()
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = (base_dir or default_data_root().parent) / path
    return path.resolve()


def _parse(raw: Mapping[str, Any], source: str, base_dir: Path | None = None) -> NexusConfig:
    data_root = resolve_data_root(raw.get("data_root"), base_dir)

    def fill(value: str) -> str:
        return value.replace("{data_root}", str(data_root))

    def store_route(r: Mapping[str, Any] | None) -> StoreRoute | None:
        if r is None:
            return None
        if r.get("backend", "lancedb") != "lancedb":
            raise ConfigError(f"nexus_store backend must be 'lancedb', got {r.get('backend')!r}")
        return StoreRoute(
            uri=fill(str(r["uri"])),
            table_name=str(r.get("table_name", "main")),
            storage=ObjectStoreOptions.parse(r.get("storage_options")),
        )

    def file_route(r: Mapping[str, Any] | None) -> FileRoute | None:
        if r is None:
            return None
        return FileRoute(
            protocol=str(r.get("protocol", "file")),
            bucket=fill(str(r["bucket"])),
            prefix=str(r.get("prefix", "")),
            storage=ObjectStoreOptions.parse(r.get("storage_options")),
        )

    def routes(r: Mapping[str, Any], defaults: Mapping[str, Any]) -> TenantRoutes:
        unknown = set(r) - set(RESOURCE_KINDS)
        if unknown:
            raise ConfigError(f"unknown resource kinds {sorted(unknown)} in {source}")
        merged = {**defaults, **r}  # an explicit `null` removes a default route
        return TenantRoutes(
            nexus_store=store_route(merged.get("nexus_store")),
            nexus_blob_store=file_route(merged.get("nexus_blob_store")),
            nexus_projection_store=file_route(merged.get("nexus_projection_store")),
        )

    environments = {}
    for env_name, env in (raw.get("environments") or {}).items():
        defaults = env.get("defaults") or {}
        tenants = {str(t): routes(r or {}, defaults) for t, r in (env.get("tenants") or {}).items()}
        environments[str(env_name)] = EnvironmentConfig(
            tenants=tenants, global_routes=routes(env.get("global") or {}, {})
        )

    emb = dict(raw.get("embedder") or {})
    remote = dict(emb.pop("remote", None) or {})
    embedder = EmbedderConfig(
        **{k: v for k, v in emb.items()},
        remote=RemoteEmbedderConfig(**remote),
    )
    api_keys = tuple(ApiKeyEntry(**k) for k in (raw.get("api_keys") or []))
    return NexusConfig(
        data_root=data_root,
        environments=environments,
        api_keys=api_keys,
        embedder=embedder,
        cursor=CursorConfig(**(raw.get("cursor") or {})),
        source=source,
        api=ApiConfig(**{k: _number_or_none(v) for k, v in (raw.get("api") or {}).items()}),
        serving=ServingConfig.parse(raw.get("serving")),
        links=LinksConfig(**{k: _number_or_none(v) if k == "ttl_days" else v
                             for k, v in (raw.get("links") or {}).items()}),
    )


def own_config_path() -> Path:
    """``config.yaml`` in the data root (``NEXUS_HOME``, else ``default_data_root()``): where
    ``nexus tenants add`` starts a config when none is in use yet."""
    home = os.environ.get(HOME_ENV_VAR)
    root = Path(home).expanduser().absolute() if home else default_data_root()
    return root / "config.yaml"


def config_path() -> Path:
    """The config file in use: ``$NEXUS_CONFIG``, else the data root's ``config.yaml`` once one exists,
    else the shipped default."""
    named = os.environ.get(CONFIG_ENV_VAR)
    if named:
        return Path(named)
    own = own_config_path()
    return own if own.is_file() else DEFAULT_CONFIG_PATH


def load_config(path: str | os.PathLike[str] | None = None) -> NexusConfig:
    """Read the config named by ``path``, else the one in use (``config_path()``)."""
    chosen = Path(path or config_path())
    try:
        raw = yaml.safe_load(chosen.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"Nexus config not found: {chosen}", source=str(chosen)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"Nexus config {chosen} is not valid YAML: {exc}", source=str(chosen)) from exc
    return NexusConfig.from_dict(raw, source=str(chosen), base_dir=chosen.resolve().parent)


Stamp = tuple[int, int, int] | None  # (inode, mtime_ns, size) of the file; None when it cannot be read


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@lru_cache(maxsize=1)
def _cached_default(config_path: str, nexus_home: str | None, stamp: Stamp) -> NexusConfig | ConfigError:
    try:
        return load_config(config_path)
    except ConfigError as exc:  # cached too: a broken file is parsed once per change, not per call
        return exc


_last_good: dict[str, NexusConfig] = {}  # per config file: the config served while a change is broken
_reported: dict[str, str] = {}  # per config file: the error already logged


def default_config() -> NexusConfig:
    """The process-wide config, re-read when its file changes (a stat per call) or ``NEXUS_CONFIG`` /
    ``NEXUS_HOME`` change, so a running server, code location or MCP server serves an edited config
    without a restart. A changed file that does not load keeps the last good config and logs why."""
    path = config_path()
    found = _cached_default(str(path), os.environ.get(HOME_ENV_VAR), _stamp(path))
    if isinstance(found, NexusConfig):
        _last_good[str(path)] = found
        return found
    good = _last_good.get(str(path))
    if good is None:
        raise found
    if _reported.get(str(path)) != str(found):
        _reported[str(path)] = str(found)
        logging.getLogger("nexus").error("config %s changed but does not load, so the last good one stays "
                                         "in use: %s", path, found)
    return good

