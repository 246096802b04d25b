"""Settings precedence (flag > env > file > default) and one-line errors naming the key."""

import subprocess
import sys

import pytest

from registry.config import ConfigError, load_settings


def write(tmp_path, text):
    path = tmp_path / "tollgate.yaml"
    path.write_text(text)
    return str(path)


def test_defaults():
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 5000, "./tollgate-data")
    assert settings.workers == 1 and settings.log.access is True
    assert settings.effective_database_url.endswith("tollgate-data/tollgate.db")


def test_flag_beats_env_beats_file_beats_default(tmp_path):
    config = write(tmp_path, "port: 6000\nhost: 10.0.0.1\nworkers: 3\nlog:\n  access: true\n")
    env = {"TOLLGATE_PORT": "7000", "TOLLGATE_HOST": "127.0.0.2", "TOLLGATE_LOG_ACCESS": "false"}
    settings = load_settings(config, environ=env, overrides={"port": "8000"})
    assert settings.port == 8000  # flag
    assert settings.host == "127.0.0.2"  # environment over file
    assert settings.workers == 3  # file over default
    assert settings.log.access is False
    assert settings.data_dir == "./tollgate-data"  # default


def test_config_file_from_environment(tmp_path):
    config = write(tmp_path, "data_dir: /srv/registry\n")
    settings = load_settings(environ={"TOLLGATE_CONFIG": config})
    assert settings.data_dir == "/srv/registry"
    assert settings.storage_root.as_posix() == "/srv/registry/storage"


@pytest.mark.parametrize("text, key", [
    ("prot: 5000\n", "'prot'"),
    ("log:\n  acess: false\n", "'log.acess'"),
    ("port: many\n", "port"),
    ("log:\n  access: maybe\n", "log.access"),
    ("storage:\n  driver: tape\n", "storage.driver"),
    ("log: verbose\n", "log"),
])
def test_invalid_file_names_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text), environ={})
    assert key in str(error.value)


def test_invalid_environment_names_the_key():
    with pytest.raises(ConfigError, match="workers"):
        load_settings(environ={"TOLLGATE_WORKERS": "zero"})


def test_serve_refuses_bad_config_with_one_line(tmp_path):
    config = write(tmp_path, "storage:\n  filesystem:\n    rot: /tmp\n")
    result = subprocess.run([sys.executable, "-m", "registry", "serve", "--config", config],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tollgate: config: unknown key 'storage.filesystem.rot'"]
