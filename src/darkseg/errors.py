"""User-facing errors: one clear line naming the file, key or value and what to do."""


class DarksegError(Exception):
    """An error caused by the user's input (file, config, checkpoint, option).

    The CLI prints ``str(err)`` as a single line and exits non-zero; ``--debug`` shows the traceback.
    """


class ConfigError(DarksegError):
    """A config key, type or value is invalid."""


class DataError(DarksegError):
    """A dataset file is missing, unreadable or inconsistent."""


class CheckpointError(DarksegError):
    """A checkpoint cannot be read or does not fit the model."""
