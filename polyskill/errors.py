"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class PolyskillError(Exception):
    """A problem with the user's input (data, recipe, run directory), not a bug."""


class DataError(PolyskillError):
    """A data file is missing, corrupt or unreadable."""


class ConfigError(PolyskillError):
    """A recipe or a `--set` override is invalid."""


class RunError(PolyskillError):
    """A run directory is missing, incomplete or would be overwritten."""


class ClassifierError(DataError, ValueError):
    """Examples or labels a few-shot classifier cannot take, or a call out of order (predict before fit): a
    DataError for the command line, a ValueError for scikit-learn-style callers."""
