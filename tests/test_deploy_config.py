"""The production files in deploy/ load: Dagster's instance (Postgres storage, S3 compute logs, the ECS run
launcher against moto's ECS and S3), the gRPC workspace, and the Nexus registry with every store on S3;
every secret comes from the environment."""

import boto3
import dagster as dg
import pytest
import yaml

# Private on purpose: Dagster has no public API that validates an instance's dagster.yaml or a workspace
# file the way its daemon loads them, and loading them as the daemon does is what this file tests.
from dagster._core.instance.config import ConcurrencyConfig
from dagster._core.instance.ref import InstanceRef
from dagster._core.workspace.config_schema import process_workspace_config

from nexus_query.config import RESOURCE_KINDS, load_config
from nexus_query.errors import ConfigError
from nexus_query.routing import RoutingRegistry, hash_api_key
from tests.helpers import REPO

DEPLOY = REPO / "deploy"
SECRET_KEYS = {"password", "secret", "secret_access_key", "api_key", "sha256", "postgresqlpassword"}


@pytest.fixture
def dagster_env(monkeypatch, moto_endpoint) -> dict[str, str]:
    """What an ECS task's environment holds, with every AWS call going to moto_server."""
    env = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_DB": "dagster",
           "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "from-secrets-manager",
           "DAGSTER_COMPUTE_LOG_BUCKET": "nexus-dagster-logs", "DAGSTER_COMPUTE_LOG_PREFIX": "compute-logs",
           "NEXUS_RUN_TASK_DEFINITION": "nexus-run", "DAGSTER_PG_PASSWORD_SECRET_ARN": "arn:aws:secretsmanager:pg",
           "NEXUS_CURSOR_SECRET_ARN": "arn:aws:secretsmanager:cursor", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": moto_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    boto3.client("ecs").register_task_definition(
        family="nexus-run", containerDefinitions=[{"name": "run", "image": "nexus:test", "memory": 512}])
    boto3.client("s3").create_bucket(Bucket="nexus-dagster-logs")
    return env


def test_production_instance_loads_postgres_storage_s3_compute_logs_and_the_ecs_launcher(dagster_env):
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    ref = InstanceRef.from_dir(str(DEPLOY))
    assert ref.storage_data.class_name == "DagsterPostgresStorage"
    assert ref.storage_data.config_dict["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    launcher = ref.run_launcher  # resolves the task definition through (moto's) ECS API
    assert isinstance(launcher, EcsRunLauncher)
    assert launcher.task_definition.endswith(":task-definition/nexus-run:1") and launcher.container_name == "run"
    assert {s["name"] for s in launcher.secrets} == {"DAGSTER_PG_PASSWORD", "NEXUS_CURSOR_SECRET"}
    assert launcher.propagate_tags == {"allow_list": ["nexus/tenant"]}
    logs = ref.compute_log_manager
    assert isinstance(logs, S3ComputeLogManager) and logs._s3_bucket == "nexus-dagster-logs"
    queue = ConcurrencyConfig.from_concurrency_settings(  # as DagsterInstance combines them
        ref.settings["concurrency"], ref.run_coordinator.get_run_queue_config()).run_queue_config
    assert queue.max_concurrent_runs == 20
    assert [limit["key"] for limit in queue.tag_concurrency_limits] == ["nexus/tenant"]


def test_the_instance_refuses_to_load_without_its_secret(dagster_env, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    with pytest.raises(dg.DagsterInvalidConfigError, match="DAGSTER_PG_PASSWORD"):
        # the config is resolved before any connection
        InstanceRef.from_dir(str(DEPLOY)).storage  # noqa: B018 (the access is the test)


def test_production_workspace_reaches_the_code_location_over_grpc(monkeypatch):
    monkeypatch.setenv("NEXUS_CODE_SERVER_HOST", "nexus-code.nexus.local")
    monkeypatch.setenv("NEXUS_CODE_SERVER_PORT", "4000")
    raw = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    result = process_workspace_config(raw)
    assert result.success, result.errors
    server = result.value["load_from"][0]["grpc_server"]
    assert (server["host"], server["port"], server["location_name"]) == ("nexus-code.nexus.local", 4000, "nexus")


@pytest.fixture
def nexus_env(monkeypatch) -> dict[str, str]:
    env = {"NEXUS_BUCKET": "nexus-prod-data", "AWS_REGION": "eu-west-1", "NEXUS_CURSOR_SECRET": "c" * 64,
           "NEXUS_ACME_API_KEY_SHA256": hash_api_key("acme-prod-key")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_production_registry_puts_every_store_of_every_tenant_and_the_global_space_on_s3(nexus_env):
    config = load_config(DEPLOY / "nexus.yaml")
    assert "{data_root}" not in (DEPLOY / "nexus.yaml").read_text()
    for environment in config.environments.values():
        for routes in [*environment.tenants.values(), environment.global_routes]:
            for kind in RESOURCE_KINDS:
                route = getattr(routes, kind)
                assert route is not None, kind
                if kind == "nexus_store":
                    assert route.uri.startswith("s3://nexus-prod-data/")
                else:
                    assert route.protocol == "s3" and route.bucket == "nexus-prod-data"
                assert route.storage.region == "eu-west-1"
    registry = RoutingRegistry(config)
    ctx = registry.authenticate("acme-prod-key")
    assert (ctx.tenant_id, ctx.environment) == ("acme", "prod")
    assert registry.store_route(ctx).uri == "s3://nexus-prod-data/lance"
    assert config.cursor.secret == "c" * 64 and config.embedder.provider == "local"


def test_production_registry_refuses_to_load_without_the_cursor_secret(nexus_env, monkeypatch):
    monkeypatch.delenv("NEXUS_CURSOR_SECRET")
    with pytest.raises(ConfigError, match="NEXUS_CURSOR_SECRET"):
        load_config(DEPLOY / "nexus.yaml")


def _secret_values(node, path=()) -> list[tuple[tuple, object]]:
    """(path, value) of every key in a YAML tree whose name says it holds a secret."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if str(key).lower() in SECRET_KEYS and not isinstance(value, (dict, list)):
                found.append(((*path, key), value))
            found += _secret_values(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _secret_values(value, (*path, i))
    return found


@pytest.mark.parametrize("name", ["dagster.yaml", "nexus.yaml", "workspace.yaml", "k8s/values.yaml"])
def test_no_deploy_file_holds_a_secret_value(name):
    tree = yaml.safe_load((DEPLOY / name).read_text())
    for path, value in _secret_values(tree):
        assert isinstance(value, str) and value.startswith("${") and ":-" not in value, (path, value)
    if name == "dagster.yaml":
        assert tree["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
        assert all(isinstance(s["valueFrom"], dict) for s in tree["run_launcher"]["config"]["secrets"])
    if name == "k8s/values.yaml":
        assert tree["postgresql"]["enabled"] is False and tree["global"]["postgresqlSecretName"]
        assert tree["runLauncher"]["type"] == "K8sRunLauncher"
        assert tree["computeLogManager"]["type"] == "S3ComputeLogManager"


def test_the_image_installs_the_deploy_files_where_the_readme_says():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    readme = (DEPLOY / "README.md").read_text()
    assert "torch==2.13.0" in dockerfile and "cp deploy/dagster.yaml deploy/workspace.yaml" in dockerfile
    for path in ("dagster.yaml", "workspace.yaml", "nexus.yaml", "Dockerfile", "k8s/values.yaml"):
        assert f"`{path}`" in readme and (DEPLOY / path).exists()
