"""Dagster on a real PostgreSQL server (Debian's `postgresql` package, started on 127.0.0.1 for these
tests): the production instance file with its compute logs on S3, and the daemon's flows, that is queued
runs dequeued and executed, the landing sensor launching an ingest run, and the KPI schedule ticking."""

import glob
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import psycopg2
import pytest
import yaml

# Private on purpose: a tick's status has no public type, and the scheduler below runs as its daemon does.
from dagster._core.scheduler.instigation import TickStatus

from nexus_pipelines.common.dagster_tags import DATA_VERSION_TAG
from nexus_query.context import RequestContext
from nexus_query.landing import landing_zone
from nexus_query.store import SpaceStore
from tests.helpers import REPO, free_port, poll, stop
from tests.process_guard import describe, is_running, process_tree

PG_SYSTEM_USER = "nexus-pg"  # initdb refuses to run as root
BIN = Path(sys.executable).parent
ACME = RequestContext("acme")


def postgres_binary(name: str) -> str | None:
    """``name`` from PATH, else from the newest /usr/lib/postgresql/<version>/bin (Debian's layout)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return versions[-1] if versions else None


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str
    password: str

    def create_database(self, name: str) -> str:
        conn = self.connect("postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE runs outside a transaction
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def connect(self, database: str):
        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, password=self.password,
                                dbname=database)

    def env(self, database: str) -> dict[str, str]:
        """What deploy/dagster.yaml reads."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": database,
                "DAGSTER_PG_USER": self.user, "DAGSTER_PG_PASSWORD": self.password}


@pytest.fixture(scope="module")
def postgres():
    """A fresh PostgreSQL cluster on 127.0.0.1 (password auth), owned by an unprivileged user when the
    tests run as root; stopped and removed at the end."""
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed: `make test` installs Debian's postgresql package")
    root = Path(tempfile.mkdtemp(prefix="nexus-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            PG_SYSTEM_USER], check=True)
        owner = pwd.getpwnam(PG_SYSTEM_USER)
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", PG_SYSTEM_USER, "--"]
    server = PostgresServer(port=free_port(), user="nexus", password=secrets.token_hex(16))
    password_file = root / "password"
    password_file.write_text(server.password)
    if as_owner:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"
    subprocess.run([*as_owner, initdb, "-D", str(data), "-U", server.user, f"--pwfile={password_file}",
                    "--auth=scram-sha-256", "-E", "UTF8"], check=True, capture_output=True)
    options = f"-h 127.0.0.1 -p {server.port} -k {root} -c fsync=off -c max_connections=200"
    started = subprocess.run([*as_owner, pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                              "start"], capture_output=True)
    try:
        assert started.returncode == 0, log.read_text() if log.exists() else started.stderr
        yield server
    finally:
        subprocess.run([*as_owner, pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def dagster_home(tmp_path: Path, config: dict) -> Path:
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def production_config() -> dict:
    return yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())


def test_production_instance_keeps_runs_in_postgres_and_compute_logs_on_s3(postgres, nexus_home, tmp_path,
                                                                            monkeypatch, moto_endpoint):
    database = postgres.create_database("dagster_production_file")
    env = {**postgres.env(database), "DAGSTER_COMPUTE_LOG_BUCKET": "dagster-logs", "DAGSTER_COMPUTE_LOG_PREFIX": "logs",
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL_S3": moto_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="dagster-logs")
    home = dagster_home(tmp_path, production_config())  # deploy/dagster.yaml as it ships

    @dg.op
    def say_hello(context: dg.OpExecutionContext) -> None:
        print("hello from a step")  # stdout is what the compute log manager captures
        context.log.info("logged to the event log")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.GraphDefinition("hello", node_defs=[say_hello]).to_job().execute_in_process(instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success
    conn = postgres.connect(database)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
            assert cursor.fetchone() == ("SUCCESS",)
            cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,))
            assert cursor.fetchone()[0] > 5
    finally:
        conn.close()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="dagster-logs").get("Contents", [])]
    assert any(k.startswith(f"logs/storage/{result.run_id}/") for k in keys), keys
    stdout = [k for k in keys if k.endswith(".out")]
    assert any(b"hello from a step" in s3.get_object(Bucket="dagster-logs", Key=k)["Body"].read() for k in stdout)


def _runs(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job, statuses=[status])))


def _failed_runs(instance: dg.DagsterInstance) -> list[str]:
    failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    return [f"{r.job_name}: {r.run_id}" for r in failed]


def tick_schedules(instance: dg.DagsterInstance, *clock: datetime) -> None:
    """Iterations of the scheduler daemon's own loop, its clock at each of ``clock`` (no waiting for cron)."""
    # Private on purpose: the daemon's loop and workspace have no public entry point.
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._scheduler.scheduler import launch_scheduled_runs

    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])) as workspace:
        for end in clock:
            list(launch_scheduled_runs(workspace, logging.getLogger("scheduler"), end, iteration_times={}))


@pytest.mark.slow
def test_daemon_on_postgres_dequeues_runs_launches_ingest_from_the_landing_sensor_and_ticks_the_kpi_schedule(
        postgres, nexus_home, tmp_path, monkeypatch):
    database = postgres.create_database("dagster_daemon")
    for name, value in postgres.env(database).items():
        monkeypatch.setenv(name, value)
    config = production_config()
    del config["run_launcher"], config["compute_logs"]  # runs as local processes, logs on local disk
    home = dagster_home(tmp_path, config)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    batch = landing_zone(ACME).land_batch("main", [
        {"type": "text", "content": "Tents go back within 60 days, packed dry.", "metadata": {"topic": "returns"}},
        {"type": "text", "content": "Stoves are shipped without fuel canisters.", "metadata": {"topic": "shipping"}}])

    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], cwd=REPO,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 20

            def finished(job: str):
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                assert not _failed_runs(instance), _failed_runs(instance)
                return _runs(instance, job, dg.DagsterRunStatus.SUCCESS)

            # The landing sensor saw the batch: a queued run the coordinator dequeued and launched.
            (ingest,) = poll(lambda: finished("ingest_space"), attempts=600)
            assert ingest.tags["dagster/partition"] == "acme.default.main" and ingest.tags["nexus/tenant"] == "acme"
            events = [e.dagster_event.event_type for e in instance.all_logs(ingest.run_id) if e.dagster_event]
            lifecycle = [dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_STARTING,
                         dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS]
            assert [e for e in events if e in lifecycle] == lifecycle  # queued, then launched by the daemon
            assert landing_zone(ACME).read_task(batch.task_id).status == "succeeded"
            assert SpaceStore().open(ACME, "main").count() == 2

            # New measurements for acme (the schedule refreshes only spaces whose measurements moved), then the
            # KPI schedule's next tick (five past the hour) taken now, as the scheduler daemon would.
            instance.report_runless_asset_event(dg.AssetObservation(
                asset_key="kpi_measurements", partition="acme.default.main", tags={DATA_VERSION_TAG: "v1"}))
            now = datetime.now(UTC)
            next_tick = now.replace(minute=5, second=0, microsecond=0)
            next_tick += timedelta(hours=1) if next_tick <= now else timedelta(0)
            tick_schedules(instance, now, next_tick + timedelta(seconds=1))  # the schedule's state starts at now
            # The daemon's own scheduler runs too: near five past the hour it may evaluate the same tick,
            # which is then skipped. Either way that time gets exactly one run.
            ticks = instance.get_ticks(*_kpi_schedule_ids(instance))
            launched = [t for t in ticks if t.status == TickStatus.SUCCESS]
            assert len(launched) == 1 and len(launched[0].run_ids) == 1, ticks
            assert all(t.status == TickStatus.SKIPPED for t in ticks if t not in launched), ticks
            (kpi,) = poll(lambda: finished("kpi_facts_job"), attempts=600)
            assert kpi.tags["dagster/asset_partition_range_start"] == "acme.default.main"
            assert datetime.fromtimestamp(launched[0].timestamp, UTC).isoformat() in str(kpi.run_config)
    finally:
        started = process_tree(daemon.pid)  # the daemon, its code server and any run worker
        stop(daemon)
    assert [describe(p) for p in started if is_running(p)] == []  # the code server too, not only the daemon


def _kpi_schedule_ids(instance: dg.DagsterInstance) -> tuple[str, str]:
    (state,) = [s for s in instance.all_instigator_state() if s.instigator_name == "kpi_hourly_schedule"]
    return state.instigator_origin_id, state.selector_id
