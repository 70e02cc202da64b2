"""Each service we start asks for a login, configured from the install's secrets (no server needed)."""

from __future__ import annotations

import stat
from pathlib import Path

from userstream.config import Settings
from userstream.runtime.cassandra import CassandraService
from userstream.runtime.connect import BASIC_AUTH_EXTENSION, ConnectService
from userstream.runtime.spark import SparkService
from userstream.runtime.spark_submit import conf_dir, spark_defaults
from userstream.runtime.spark_ui_auth import FILTER_CLASS, UI_USER, credentials_file, ui_auth_jar
from userstream.store.cassandra import ROLES, credentials, spark_auth_conf


def test_cassandra_requires_logins_and_each_component_has_its_role(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    yaml = CassandraService(settings).cassandra_yaml()
    for cls in ("auth.PasswordAuthenticator", "auth.CassandraAuthorizer"):
        assert f"class_name: org.apache.cassandra.{cls}" in yaml
    logins = {identity: credentials(settings, identity) for identity in ROLES}
    assert {user for user, _ in logins.values()} == set(ROLES.values())
    assert len({password for _, password in logins.values()}) == 3, "one password per identity"
    assert "cassandra" not in {user for user, _ in logins.values()}, "never the default superuser"
    assert spark_auth_conf(settings)["spark.cassandra.auth.username"] == ROLES["stream"]


def test_an_external_cassandra_login_serves_every_component(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, cassandra_username="team", cassandra_password="pw")
    assert {credentials(settings, i) for i in ROLES} == {("team", "pw")}


def test_spark_rpc_is_authenticated_with_a_private_generated_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    text = spark_defaults(settings)
    assert "spark.authenticate true" in text and settings.secret("spark_auth_secret") in text
    for role in ("daemon", "submit"):
        defaults = conf_dir(settings, role) / "spark-defaults.conf"
        assert defaults.read_text() == text and stat.S_IMODE(defaults.stat().st_mode) == 0o600
    # an external master without a configured secret: nothing to authenticate with, so nothing is invented
    external = Settings(data_dir=tmp_path, spark_master_url="spark://elsewhere:7077")
    assert "spark.authenticate" not in spark_defaults(external)
    pinned = Settings(data_dir=tmp_path, spark_master_url="spark://elsewhere:7077", spark_auth_secret="s")
    assert "spark.authenticate.secret s" in spark_defaults(pinned)


def test_spark_uis_ask_for_a_login_from_a_private_credentials_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    jar = ui_auth_jar(settings)
    creds = credentials_file(settings)
    text = spark_defaults(settings)
    for line in (
        f"spark.ui.filters {FILTER_CLASS}",
        f"spark.{FILTER_CLASS}.param.credentialsFile {creds}",
        f"spark.driver.extraClassPath {jar}",
    ):
        assert line in text.splitlines()
    assert settings.secret("spark_ui_password") not in text, "the conf names the file, not the password"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and creds.parent == settings.secret_store.directory
    assert creds.read_text() == f"{UI_USER}:{settings.secret('spark_ui_password')}\n"
    conf_dir(settings, "daemon")  # builds the filter's jar: the daemons load it from their classpath
    assert jar.is_file() and SparkService(settings).programs()[0].env["SPARK_DAEMON_CLASSPATH"] == str(jar)
    # an external master's UIs are its own: no filter, and no jar they could not load
    external = Settings(data_dir=tmp_path / "ext", spark_master_url="spark://elsewhere:7077")
    assert "spark.ui.filters" not in (conf_dir(external, "submit") / "spark-defaults.conf").read_text()
    assert not ui_auth_jar(external).exists()


def test_connect_rest_asks_for_a_login_from_a_private_users_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    connect = ConnectService(settings)
    assert connect.worker_config()["rest.extension.classes"] == BASIC_AUTH_EXTENSION
    connect._write_rest_login()
    users = connect.rest_users_file
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert users.read_text() == f"userstream={settings.secret('connect_rest_password')}\n"
    assert str(users) in connect.rest_jaas_file.read_text()
    command = connect.programs()[0].command
    assert f"-Djava.security.auth.login.config={connect.rest_jaas_file}" in command
    assert not any(settings.secret("connect_rest_password") in arg for arg in command)
