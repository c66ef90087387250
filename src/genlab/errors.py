"""Errors genlab raises on bad input. Each says what was wrong and what would be right."""


class GenlabError(Exception):
    """Base class for every error genlab raises on purpose."""


class ConfigError(GenlabError, ValueError):
    """An unknown or malformed configuration key or value."""


class CheckpointError(GenlabError):
    """A run directory or checkpoint that is missing, corrupt or of another model."""


class TrainingError(GenlabError, RuntimeError):
    """Training stopped: a non-finite loss, a collapsed discriminator, ..."""
