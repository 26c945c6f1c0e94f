"""Errors that stop a run with one line saying what to fix."""


class ConfigError(ValueError):
    """A bad configuration: the message is one line naming the setting and the fix."""


class RunFailed(RuntimeError):
    """A Dagster run failed; the message is the failing step's own error."""
