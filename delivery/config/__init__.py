"""The engine's configuration: one TOML file, checked whole before anything starts.

`load_config` reads the file and `parse_config` turns its tables into frozen
dataclasses (`delivery.config.parse`); the records and their lookups are in
`delivery.config.model`; `delivery.config.origins` checks and matches the
web pages a source takes events from; `delivery.config.toml_table` is the generic reader
that reports every problem of a file at once, each naming its key. A config
with any problem raises one `ConfigError` listing them all, so it never
starts the engine. The keys, their defaults and the rules are documented in
`docs/configuration.md`.

Secrets (write keys, header values, the admin token) are held in `Secret`,
whose repr and str are masked, and no error message ever quotes one.
"""

from delivery.config.model import (
    QUEUE_DSN_ENV,
    AlertsConfig,
    Config,
    ConfigError,
    Destination,
    EngineConfig,
    LogConfig,
    QueueConfig,
    Secret,
    Source,
)
from delivery.config.parse import load_config, parse_config

__all__ = [
    "QUEUE_DSN_ENV",
    "AlertsConfig",
    "Config",
    "ConfigError",
    "Destination",
    "EngineConfig",
    "LogConfig",
    "QueueConfig",
    "Secret",
    "Source",
    "load_config",
    "parse_config",
]
