"""Server settings: command line over environment over config file over defaults; unsafe refused."""

from __future__ import annotations

import json

import pytest

from tuneloop import cli
from tuneloop.cli_builder import call_parsed
from tuneloop.errors import UsageError
from tuneloop.serve.settings import Settings


def parse(argv: list[str]) -> Settings:
    """What `tuneloop serve ARGV` would pass to `serve(settings=...)`."""
    args = cli.make_parser().parse_args(["serve", *argv])
    captured = {}

    def capture(*, settings: Settings) -> int:
        captured["settings"] = settings
        return 0

    args._tuneloop_function = capture
    call_parsed(args)
    return captured["settings"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("TUNELOOP_") and name != "TUNELOOP_CACHE_DIR":
            monkeypatch.delenv(name)


def test_defaults_are_safe():
    settings = parse([])
    assert settings.host == "127.0.0.1" and settings.environment == "production"
    assert settings.api_key_values() == [] and settings.max_batch_size == 16


def test_command_line_beats_environment_beats_config_file(tmp_path, monkeypatch):
    config = tmp_path / "serve.toml"
    config.write_text('port = 7000\nmax_batch_size = 4\nmax_waiting = 3\nlog_format = "text"\n')
    monkeypatch.setenv("TUNELOOP_CONFIG_FILE", str(config))
    monkeypatch.setenv("TUNELOOP_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("TUNELOOP_MAX_WAITING", "5")
    settings = parse(["--max-waiting", "9"])
    assert settings.port == 7000  # file
    assert settings.max_batch_size == 8  # environment over file
    assert settings.max_waiting == 9  # command line over environment
    assert settings.log_format == "text"


def test_json_config_file_from_the_command_line(tmp_path):
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"adapter": ["a=/x", "b=/y"], "request_timeout_s": 5}))
    settings = parse(["--config-file", str(config)])
    assert settings.adapter == ["a=/x", "b=/y"] and settings.request_timeout_s == 5


def test_unknown_key_in_config_file_is_named(tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text("max_batch = 4\n")
    with pytest.raises(UsageError, match="max_batch: Extra inputs are not permitted"):
        parse(["--config-file", str(config)])


def test_api_keys_from_environment_and_file(tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nkey-from-file\n\n")
    monkeypatch.setenv("TUNELOOP_API_KEYS", "k1, k2")
    settings = parse(["--api-keys-file", str(keys), "--host", "0.0.0.0"])
    assert settings.api_key_values() == ["k1", "k2", "key-from-file"]
    assert "k1" not in repr(settings), "keys must not show up in logs or tracebacks"


def test_adapters_from_the_environment_are_comma_separated(monkeypatch):
    monkeypatch.setenv("TUNELOOP_ADAPTER", "a=/x,b=/y")
    assert parse([]).adapter == ["a=/x", "b=/y"]


def test_public_bind_without_keys_is_refused_outside_development():
    with pytest.raises(UsageError, match="refusing to listen on 0.0.0.0 without API keys"):
        parse(["--host", "0.0.0.0"])
    assert parse(["--host", "0.0.0.0", "--environment", "development"]).host == "0.0.0.0"


def test_weak_admin_key_and_inconsistent_limits_are_refused(monkeypatch):
    monkeypatch.setenv("TUNELOOP_ADMIN_KEY", "short")
    with pytest.raises(UsageError, match="shorter than 16"):
        parse([])
    monkeypatch.delenv("TUNELOOP_ADMIN_KEY")
    with pytest.raises(UsageError, match="prefill_chunk .* must not exceed max_step_tokens"):
        parse(["--prefill-chunk", "1024", "--max-step-tokens", "512"])
    with pytest.raises(UsageError, match="max_batch_size: Input should be greater than or equal"):
        parse(["--max-batch-size", "0"])


def test_secrets_have_no_command_line_option():
    help_text = cli.make_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    assert "--api-keys " not in help_text and "--admin-key" not in help_text
    assert "TUNELOOP_API_KEYS" in help_text


def test_bad_adapter_option_fails_before_the_server_starts(tmp_path):
    code = cli.main(["serve", "--adapter", "no-equals-sign"])
    assert code == 1
    code = cli.main(["serve", "--adapter", "bad name=/tmp"])
    assert code == 1
