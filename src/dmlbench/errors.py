"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class DmlbenchError(Exception):
    """Base class: the message names the input that was wrong and what to do about it."""


class ConfigError(DmlbenchError):
    """A config value is invalid (unknown method, bad key, impossible split, ...)."""


class DatasetError(DmlbenchError):
    """A dataset source is missing, unreadable, corrupt or truncated."""


class TrainingError(DmlbenchError):
    """Training failed in a way the user must act on (e.g. a NaN or infinite loss)."""


class HeadInputError(DmlbenchError, ValueError):
    """A head was given embeddings or labels of the wrong shape, dtype or class range (a bug in
    the code calling the head, named in the message, rather than a bad config value)."""
