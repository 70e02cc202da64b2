"""Secrets generated per install: created once with private modes, overridable, rotated, never constants."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from userstream.cdc.connector import connector_config
from userstream.config import Settings
from userstream.errors import ConfigError
from userstream.runtime.airflow import AirflowService
from userstream.runtime.connect import ConnectService
from userstream.runtime.secrets import rotate, secrets_overview
from userstream.secret_store import SECRET_NAMES, SecretStore, write_private
from userstream.store.postgres import PASSWORD_SECRETS, conninfo


def test_a_secret_is_generated_once_private_and_strong(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    first = store.get("postgres_password")
    assert len(first) >= 40 and first == store.get("postgres_password")
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path("postgres_password").stat().st_mode) == 0o600
    assert store.path("postgres_password").read_text() == first, "no newline: Connect reads the file as it is"
    other = SecretStore(tmp_path / "elsewhere").get("postgres_password")
    assert other != first, "each install has its own"


def test_racing_processes_agree_on_one_value(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(store.get("dashboard_token"))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and len(seen) == 16


def test_an_empty_file_left_by_an_interrupted_write_is_replaced(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    store.directory.mkdir()
    store.path("airflow_jwt_secret").write_text("")
    assert len(store.get("airflow_jwt_secret")) >= 40


def test_rotate_replaces_the_value(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    old = store.get("dashboard_token")
    was, new = store.rotate("dashboard_token")
    assert was == old and new != old and store.get("dashboard_token") == new
    assert not list(store.directory.glob("*.tmp")), "written atomically, nothing left behind"


def test_settings_take_the_override_else_the_generated_secret(tmp_path: Path) -> None:
    generated = Settings(data_dir=tmp_path)
    password = generated.secret("postgres_password")
    assert password not in ("userstream", "admin") and f"password={password}" in generated.postgres_conninfo
    pinned = Settings(data_dir=tmp_path, postgres_password="from-env", airflow_admin_password="a")
    assert pinned.secret("postgres_password") == "from-env" and pinned.secret("airflow_admin_password") == "a"
    assert Settings(data_dir=tmp_path).secret("airflow_admin_password") != "admin"


def test_no_secret_is_a_constant_default() -> None:
    for name in SECRET_NAMES:
        field = Settings.model_fields.get(name)
        assert field is None or field.default is None, f"{name} has a constant default"


def test_the_connector_logs_in_as_debeziums_own_role_and_names_its_password_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    config = connector_config(settings)
    assert config["database.user"] == "userstream_cdc" != settings.postgres_user
    assert settings.secret("postgres_cdc_password") not in str(config)
    assert settings.secret("postgres_password") not in str(config)
    assert config["database.password"] == f"${{dir:{settings.secret_store.directory}:postgres_cdc_password}}"
    worker = ConnectService(settings).worker_config()
    assert worker["config.providers.dir.param.allowed.paths"] == str(settings.secret_store.directory)
    # the admin's password set by the user does not change Debezium's role
    pinned = connector_config(Settings(data_dir=tmp_path, postgres_password="mine"))
    assert pinned["database.user"] == "userstream_cdc" and "mine" not in str(pinned)
    # an external Postgres is one DSN for all: its login is passed as it is (an external Connect cannot read
    # our files either)
    dsn = "host=db.example port=6432 dbname=users user=cdc password=theirs"
    external = connector_config(Settings(data_dir=tmp_path, postgres_dsn=dsn))
    assert (external["database.hostname"], external["database.port"]) == ("db.example", "6432")
    assert (external["database.user"], external["database.password"], external["database.dbname"]) == (
        "cdc",
        "theirs",
        "users",
    )


def test_each_component_has_a_connection_of_its_own_role(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    seen = {}
    for identity, secret in PASSWORD_SECRETS.items():
        params = conninfo_to_dict(conninfo(settings, identity))
        assert params["password"] == settings.secret(secret)
        seen[identity] = (params["user"], params["dbname"])
    assert seen["admin"] == (settings.postgres_user, settings.postgres_db)
    assert seen["airflow"] == ("userstream_airflow", "airflow")
    assert seen["registry"] == ("userstream_registry", "registry")
    assert len({user for user, _ in seen.values()}) == len(PASSWORD_SECRETS), "one role per identity"
    assert len(set(PASSWORD_SECRETS.values())) == len(PASSWORD_SECRETS), "one password per role"
    # external: the one DSN for all, only the database switched for Airflow's and the registry's
    dsn = "host=db.example dbname=users user=u password=p"
    external = Settings(data_dir=tmp_path, postgres_dsn=dsn)
    assert conninfo(external, "ingest") == dsn == conninfo(external, "monitor")
    assert conninfo_to_dict(conninfo(external, "registry"))["dbname"] == "registry"


def test_airflow_gets_its_secrets_in_its_environment_and_a_private_passwords_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    airflow = AirflowService(settings)
    env = airflow.environment()
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == settings.secret("airflow_jwt_secret")
    sql_alchemy = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert f"userstream_airflow:{settings.secret('postgres_airflow_password')}@" in sql_alchemy
    assert sql_alchemy.endswith("/airflow") and settings.secret("postgres_password") not in sql_alchemy
    airflow._write_passwords()
    passwords = airflow.home / "passwords.json"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert settings.secret("airflow_admin_password") in passwords.read_text()
    assert all(settings.secret("airflow_admin_password") not in a for p in airflow.programs() for a in p.command)


def test_show_lists_every_secret_and_the_logins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    logins, infos = secrets_overview(settings)
    assert settings.secret("airflow_admin_password") in logins["Airflow UI"]
    assert f"user userstream  password {settings.secret('spark_ui_password')}" in logins["Spark UIs"]
    assert f"token={settings.secret('dashboard_token')}" in logins["dashboard"]
    assert settings.secret("postgres_password") not in str(logins), "the Postgres password stays in its file"
    assert [i.name for i in infos] == list(SECRET_NAMES) and not any(i.overridden for i in infos)


def test_rotate_refuses_an_unknown_service_and_an_overridden_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="choose from"):
        rotate(Settings(data_dir=tmp_path), "cassandra")  # its logins are set from the store at each start
    with pytest.raises(ConfigError, match="Kafka is not running"):  # the logins are changed on the broker
        rotate(Settings(data_dir=tmp_path, kafka_port=1), "kafka")
    with pytest.raises(ConfigError, match="Postgres is not running"):
        rotate(Settings(data_dir=tmp_path, postgres_port=1), "postgres")
    with pytest.raises(ConfigError, match="not ours to rotate"):  # an external cluster's logins are its own
        rotate(Settings(data_dir=tmp_path, kafka_bootstrap="broker:9092"), "kafka")
    with pytest.raises(ConfigError, match="USERSTREAM_DASHBOARD_TOKEN"):
        rotate(Settings(data_dir=tmp_path, dashboard_token="pinned"), "dashboard")


def test_rotating_a_stopped_service_changes_its_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    before = settings.secret("dashboard_token")
    assert rotate(settings, "dashboard") == ["dashboard_token"]
    assert settings.secret("dashboard_token") != before


def test_a_secret_file_left_readable_by_an_older_version_is_made_private(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets")
    store.directory.mkdir()
    store.path("airflow_jwt_secret").write_text("x" * 43)
    store.path("airflow_jwt_secret").chmod(0o644)
    assert store.get("airflow_jwt_secret") == "x" * 43
    assert stat.S_IMODE(store.path("airflow_jwt_secret").stat().st_mode) == 0o600


def test_write_private_creates_0600_replaces_atomically_and_fixes_old_modes(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "login.properties"
    assert write_private(path, "user=one\n") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "user=one\n"
    assert write_private(path, "user=one\n") is False, "unchanged content is not rewritten"
    inode = path.stat().st_ino
    assert write_private(path, "user=two\n") is True
    assert path.read_text() == "user=two\n"
    assert path.stat().st_ino != inode, "swapped in by rename: a reader never sees a half-written file"
    assert [p.name for p in path.parent.iterdir()] == ["login.properties"], "no temporary file left behind"
    path.chmod(0o644)  # as an older version left it
    assert write_private(path, "user=two\n") is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
