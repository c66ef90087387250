"""Errors genlab raises on bad input. Each says what was wrong and what would be right."""


class GenlabError(Exception):
    """Base class for every error genlab raises on purpose."""


class ConfigError(GenlabError, ValueError):
    """An unknown or malformed configuration key or value."""


class CheckpointError(GenlabError):
    """A run directory or checkpoint that is missing, corrupt or of another model."""


class TrainingError(GenlabError, RuntimeError):
    """Training stopped: a non-finite loss, a collapsed discriminator, ..."""


class WriteError(GenlabError, OSError):
    """A file or folder genlab must write cannot be: a read-only location, a full disk,
    a file where a folder must be. Nothing half-written is left behind."""


class RunInUseError(GenlabError):
    """Another genlab process is training in the run folder (it holds the folder's lock)."""
