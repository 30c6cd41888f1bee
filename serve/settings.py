"""Every server setting, in one pydantic-settings object passed down to whatever needs it.

Sources, strongest first: command-line options (`tuneloop serve --help` lists each one),
environment variables `TUNELOOP_<NAME>`, a TOML or JSON config file (`--config-file` or
`TUNELOOP_CONFIG_FILE`, keys spelt like the fields), then the defaults here. API keys come
only from the environment (`TUNELOOP_API_KEYS`, comma-separated) or a file of keys, never from
the command line, where other users of the machine could read them.

Unsafe combinations are refused before anything loads: outside `--environment development`,
a server that listens beyond loopback must have API keys.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tuneloop.errors import UsageError

NOT_ON_CLI = {"cli": False}
MIN_ADMIN_KEY_LENGTH = 16
DRIFT_THRESHOLD = 0.25
"""tuneloop.drift_profile.PSI_SIGNIFICANT (a test keeps them equal; importing that module here
would load numpy for every `tuneloop --help`)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNELOOP_", extra="forbid")

    # ---- what to serve ----
    base: str | None = Field(
        None,
        description="base model: an alias, a local folder or a Hugging Face model id. Default: "
        "the embedded smollm2-135m-instruct, unless only --model-dir is given",
    )
    adapter: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="NAME=DIR of an adapter folder written by `tuneloop train` (or a plain PEFT "
        "LoRA folder); repeatable; comma-separated in the environment",
    )
    model_dir: Path | None = Field(
        None,
        description="folder written by `tuneloop optimize all`; serves the variants that "
        "passed the quality gate as NAME:VARIANT and the recommended one as NAME",
    )
    variant: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="serve only these variants of --model-dir (e.g. fused-int8, or "
        "`recommended`); repeatable; comma-separated in the environment. Default: every "
        "variant that passed its gate (each one holds its own weights in memory)",
    )
    served_model_name: str | None = Field(
        None, description="model id of the base model in the API (default: its alias or folder)"
    )
    adapter_dir: Path | None = Field(
        None,
        description="folder the admin routes may load adapters from (nothing outside it); "
        "unset, runtime loading is off",
    )

    # ---- how to run it ----
    device: str = Field("auto", description="torch device: auto, cpu, cuda, cuda:1, ...")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="torch weights: auto is float32 on CPU, bfloat16 on GPU"
    )
    quantization: Literal["none", "bnb-8bit", "bnb-4bit"] = Field(
        "none", description="load torch weights in 8 or 4 bits with bitsandbytes (GPU only)"
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads per model operation (default: all available cores but one, "
        "which is left to the HTTP side)",
    )

    # ---- batching ----
    max_batch_size: int = Field(16, ge=1, le=1024, description="sequences decoded together")
    max_step_tokens: int = Field(
        512, ge=1, description="tokens one step may process (prefill chunks + one per sequence)"
    )
    prefill_chunk: int = Field(
        256, ge=1, description="longest piece of one prompt prefilled in a step"
    )
    prefix_cache: bool = Field(
        True,
        description="reuse the cache of the latest prompt's shared prefix (fused ONNX variants)",
    )
    speculate: bool = Field(
        True,
        description="check tokens drafted from the variant's draft table (optimize draft) "
        "while one sequence runs (fused ONNX variants)",
    )
    max_batch_tokens: int = Field(
        32768,
        ge=1,
        description="KV cache tokens all running requests may reserve (prompt + max_tokens)",
    )
    max_waiting: int = Field(
        64, ge=0, description="requests allowed to wait for a free batch slot; more get 429"
    )

    # ---- request limits ----
    max_prompt_tokens: int = Field(4096, ge=1, description="longest prompt accepted, in tokens")
    max_tokens_limit: int = Field(
        4096, ge=1, description="largest max_tokens a request may ask for"
    )
    default_max_tokens: int = Field(
        512, ge=1, description="max_tokens of a chat request that sets none"
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="largest request body accepted, in bytes (else 413)"
    )
    request_timeout_s: float = Field(
        300, gt=0, description="deadline of one request; when it passes the request ends (504)"
    )

    # ---- network and security ----
    host: str = Field("127.0.0.1", description="interface to bind")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on")
    environment: Literal["production", "development"] = Field(
        "production",
        description="development allows a public bind without API keys",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="accepted API keys (environment only: TUNELOOP_API_KEYS, comma-separated)",
        json_schema_extra=NOT_ON_CLI,
    )
    api_keys_file: Path | None = Field(
        None, description="file of accepted API keys, one per line ('#' starts a comment)"
    )
    admin_key: SecretStr | None = Field(
        None,
        description="key of the admin routes (environment only: TUNELOOP_ADMIN_KEY)",
        json_schema_extra=NOT_ON_CLI,
    )
    metrics_require_key: bool = Field(False, description="ask for an API key on /metrics too")
    rate_limit_rpm: int = Field(
        0,
        ge=0,
        description="requests per minute each API key (each client address, without keys) "
        "may send to /v1; more get 429 with Retry-After. 0: no limit",
    )

    # ---- operations ----
    shutdown_grace_s: float = Field(
        30, ge=0, description="on SIGTERM, how long running requests may take to finish"
    )
    log_format: Literal["json", "text"] = Field("json", description="log line format")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    log_prompts: bool = Field(
        False, description="log prompt and completion text (off: only sizes and ids)"
    )
    config_file: Path | None = Field(
        None, description="TOML or JSON file with any of these settings"
    )

    # ---- drift (see serve/drift_monitor.py) ----
    drift: bool = Field(
        True,
        description="score served traffic against each adapter's reference_profile.json "
        "(tuneloop_drift_score)",
    )
    drift_window: int = Field(
        200, ge=10, description="requests per model and adapter that drift is scored on"
    )
    drift_min_requests: int = Field(
        100, ge=10, description="requests in the window before any drift score is exported"
    )
    drift_interval_s: float = Field(
        1.0, gt=0, description="how often drift scores are recomputed (off the request path)"
    )
    drift_threshold: float = Field(
        DRIFT_THRESHOLD,
        gt=0,
        description="PSI above which a model's drift counts as high (drifted prompts exported)",
    )
    drift_export_dir: Path | None = Field(
        None,
        description="folder for prompts served while drift is high, as redacted chat JSONL "
        "(one file per model or adapter); unset, nothing is exported",
    )
    drift_export_max_mb: float = Field(
        100, gt=0, description="stop exporting once the folder's export files reach this size"
    )

    @field_validator("adapter", "variant", "api_keys", mode="before")
    @classmethod
    def _split_commas(cls, value):
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        if self.drift_min_requests > self.drift_window:
            raise ValueError(
                f"drift_min_requests ({self.drift_min_requests}) must not exceed drift_window "
                f"({self.drift_window})"
            )
        if self.prefill_chunk > self.max_step_tokens:
            raise ValueError(
                f"prefill_chunk ({self.prefill_chunk}) must not exceed max_step_tokens "
                f"({self.max_step_tokens})"
            )
        if self.environment == "development":
            return self
        if not self.api_key_values() and not is_loopback(self.host):
            raise ValueError(
                f"refusing to listen on {self.host} without API keys: set TUNELOOP_API_KEYS "
                "(comma-separated) or --api-keys-file, or bind 127.0.0.1, or pass "
                "--environment development"
            )
        if self.admin_key and len(self.admin_key.get_secret_value()) < MIN_ADMIN_KEY_LENGTH:
            raise ValueError(
                f"TUNELOOP_ADMIN_KEY is shorter than {MIN_ADMIN_KEY_LENGTH} characters"
            )
        return self

    def compute_threads(self) -> int:
        """Threads for model compute: as set, else every core this process may use but one.

        The event loop (parsing, tokenizing, streaming) needs a core of its own; giving the
        model all of them makes each operation wait for the thread that lost its core, which
        on a 2-core machine costs several times the throughput.
        """
        if self.threads:
            return self.threads
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, cores - 1)

    def api_key_values(self) -> list[str]:
        """Keys from TUNELOOP_API_KEYS and from the keys file."""
        keys = [k.get_secret_value() for k in self.api_keys]
        if self.api_keys_file is not None:
            keys += read_keys_file(self.api_keys_file)
        return keys

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        config_file = init_settings.init_kwargs.get("config_file") or os.environ.get(
            "TUNELOOP_CONFIG_FILE"
        )
        if config_file:
            sources.append(_config_file_source(settings_cls, Path(config_file)))
        return tuple(sources)


def read_keys_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"--api-keys-file {path}: {exc.strerror or exc}") from exc
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config_file_source(settings_cls, path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise UsageError(f"config file {path}: no such file")
    if path.suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if path.suffix == ".json":
        return JsonConfigSettingsSource(settings_cls, json_file=path)
    raise UsageError(f"config file {path}: use a .toml or .json file")
