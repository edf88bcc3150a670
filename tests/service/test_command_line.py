"""`dmcodec-serve` / `dmcodec serve`: flags over environment over config file, and clear errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dmcodec.cli import app
from dmcodec_service.cli import main, parse_settings


def test_flags_override_the_environment_which_overrides_the_config_file(tmp_path, monkeypatch):
    config = tmp_path / "service.env"
    config.write_text("DMCODEC_PORT=7100\nDMCODEC_MAX_BATCH_SIZE=3\nDMCODEC_MAX_QUEUE_SIZE=5\n")
    monkeypatch.setenv("DMCODEC_CONFIG_FILE", str(config))
    monkeypatch.setenv("DMCODEC_MAX_BATCH_SIZE", "4")
    settings = parse_settings(["--port", "9000", "--api-keys", "a,b", "--drain-timeout-s", "2.5"])
    assert (settings.port, settings.max_batch_size, settings.max_queue_size) == (9000, 4, 5)
    assert settings.api_keys == ["a", "b"] and settings.drain_timeout_s == 2.5
    assert parse_settings([]).port == 7100


@pytest.mark.parametrize("argv, environment, message", [
    (["--port", "abc"], {}, "port (--port, DMCODEC_PORT): Input should be a valid integer"),
    ([], {"DMCODEC_MAX_BATCH_SIZE": "0"}, "max_batch_size (--max-batch-size, DMCODEC_MAX_BATCH_SIZE)"),
    ([], {"DMCODEC_CONFIG_FILE": "/nonexistent/service.env"}, "no such file"),
    (["--device", "tpu"], {}, "device must be auto, cpu, cuda or cuda:N"),
    (["--host", "0.0.0.0"], {}, "refusing to serve on 0.0.0.0 without API keys"),
    (["--host", "10.1.2.3", "--api-keys", ""], {}, "refusing to serve on 10.1.2.3 without API keys"),
])
def test_a_wrong_value_is_one_line_and_exit_code_2(argv, environment, message, monkeypatch, capsys):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("dmcodec-serve: error: ")


def test_authentication_is_off_only_on_loopback_or_when_allowed_knowingly():
    assert not parse_settings(["--host", "127.0.0.1"]).exposed_without_keys()
    assert not parse_settings(["--host", "::1"]).exposed_without_keys()
    assert not parse_settings(["--host", "0.0.0.0", "--api-keys", "k"]).exposed_without_keys()
    allowed = parse_settings(["--host", "0.0.0.0", "--allow-unauthenticated", "true"])
    assert allowed.exposed_without_keys() and allowed.allow_unauthenticated


def test_help_prints_every_setting_and_exits(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: dmcodec-serve" in out and "--max-batch-size" in out and "--api-keys" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["--no-such-flag"])
    assert exit_info.value.code == 2


def test_dmcodec_serve_is_the_same_command():
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0 and "serve" in listing.output
    result = runner.invoke(app, ["serve", "--port", "abc"])
    assert result.exit_code == 2 and "port (--port, DMCODEC_PORT)" in result.stderr
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "usage: dmcodec-serve" in result.stdout
