"""Errors of the data layer that a command reports as one line (imports nothing, so `--help` stays fast)."""


class LogStoreError(Exception):
    """The log's store is misconfigured or cannot be reached; the message names the store, never a secret."""
