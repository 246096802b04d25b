"""The storage settings: `storage.s3.*` keys, the `--storage` URL and their validation."""

import subprocess
import sys

import pytest

from registry.app import make_storage
from registry.cli import build_parser
from registry.cli.common import settings_from_args
from registry.config import ConfigError, load_settings, parse_storage_url
from registry.storage.filesystem import FilesystemDriver
from registry.storage.s3 import S3Driver

MiB = 1024 * 1024


def test_storage_url_sets_driver_bucket_prefix_and_options():
    assert parse_storage_url("s3://bucket/some/prefix/?endpoint=http://127.0.0.1:9000"
                             "&region=eu-west-1&redirect=false&part_size=5242880") == {
        "storage.driver": "s3", "storage.s3.bucket": "bucket",
        "storage.s3.prefix": "some/prefix", "storage.s3.endpoint_url": "http://127.0.0.1:9000",
        "storage.s3.region": "eu-west-1", "storage.s3.redirect": "false",
        "storage.s3.part_size": "5242880"}
    assert parse_storage_url("s3://bucket") == {
        "storage.driver": "s3", "storage.s3.bucket": "bucket", "storage.s3.prefix": ""}
    assert parse_storage_url("file:///srv/blobs") == {
        "storage.driver": "filesystem", "storage.filesystem.root": "/srv/blobs"}


@pytest.mark.parametrize("url, message", [
    ("s3://bucket?endpont=http://x", "unknown option 'endpont'"),
    ("gs://bucket", "expected s3://"),
    ("s3:///prefix", "expected s3://"),
])
def test_bad_storage_urls_are_refused(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_storage_url(url)


def test_storage_flag_beats_environment_and_file(tmp_path):
    config = tmp_path / "tollgate.yaml"
    config.write_text("storage:\n  driver: s3\n  s3:\n    bucket: from-file\n"
                      "    region: file-region\n    redirect_expires_in: 60\n")
    env = {"TOLLGATE_STORAGE_S3_BUCKET": "from-env", "TOLLGATE_STORAGE_S3_PREFIX": "env/prefix",
           "TOLLGATE_STORAGE_S3_PART_SIZE": str(8 * MiB)}
    settings = load_settings(str(config), environ=env)
    assert (settings.storage.s3.bucket, settings.storage.s3.prefix) == ("from-env", "env/prefix")
    assert settings.storage.s3.part_size == 8 * MiB
    settings = load_settings(str(config), environ=env, overrides=parse_storage_url(
        "s3://from-flag/flag-prefix?region=flag-region"))
    s3 = settings.storage.s3
    assert (s3.bucket, s3.prefix, s3.region) == ("from-flag", "flag-prefix", "flag-region")
    assert s3.redirect_expires_in == 60 and s3.part_size == 8 * MiB  # not in the URL


def test_serve_flag_reaches_the_settings():
    args = build_parser().parse_args(["serve", "--storage", "s3://b/p?endpoint=http://h:1"])
    settings = settings_from_args(args)
    assert settings.storage.driver == "s3" and settings.storage.s3.endpoint_url == "http://h:1"


@pytest.mark.parametrize("values, key", [
    ({"storage.driver": "s3"}, "storage.s3.bucket"),
    ({"storage.s3.part_size": str(4 * MiB)}, "storage.s3.part_size"),
    ({"storage.s3.part_size": str(6 * 1024 * MiB)}, "storage.s3.part_size"),
    ({"storage.s3.addressing_style": "dns"}, "storage.s3.addressing_style"),
    ({"storage.s3.redirect": "maybe"}, "storage.s3.redirect"),
    ({"storage.s3.redirect_expires_in": "0"}, "storage.s3.redirect_expires_in"),
])
def test_invalid_s3_settings_name_the_key(values, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(environ={}, overrides=values)


def test_defaults_and_make_storage(tmp_path):
    settings = load_settings(environ={"TOLLGATE_DATA_DIR": str(tmp_path)})
    s3 = settings.storage.s3
    assert (s3.part_size, s3.redirect, s3.redirect_expires_in, s3.addressing_style) == (
        16 * MiB, True, 1200, "auto")
    assert isinstance(make_storage(settings), FilesystemDriver)
    settings = load_settings(environ={}, overrides=parse_storage_url(
        "s3://bucket/p?endpoint=http://127.0.0.1:9&redirect_expires_in=30"))
    driver = make_storage(settings)
    assert isinstance(driver, S3Driver)
    assert (driver.bucket, driver.prefix, driver.redirect_expires_in) == ("bucket", "p", 30)
    assert driver.client.meta.config.s3["addressing_style"] == "path"  # auto, with an endpoint


def test_bad_storage_flag_stops_start_up_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "registry", "serve", "--data-dir",
                             str(tmp_path), "--storage", "s3://b?bogus=1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tollgate: --storage: unknown option 'bogus' (known: addressing_style, endpoint, "
        "endpoint_url, part_size, redirect, redirect_expires_in, region)"]
