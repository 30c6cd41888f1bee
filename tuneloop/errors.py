"""The one exception hierarchy of tuneloop.

Every error raised on purpose derives from `TuneloopError`. The CLI prints its message as a
single line and exits with `exit_code`; the server maps the same classes to OpenAI-shaped
error bodies. Messages name the problem precisely (file, line, field, limit) and, where there
is one, the command that fixes it.
"""


class TuneloopError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1


class UsageError(TuneloopError):
    """A command-line option or setting has a value that cannot work."""

    exit_code = 2


class DataError(TuneloopError):
    """Input data is malformed; the message says which file, line and field."""


class ModelNotFoundError(TuneloopError):
    """A base model, adapter or artifact could not be found or fetched."""


class ModelLoadError(TuneloopError):
    """Model files were found but are unusable (corrupt, incompatible, or unsafe to read)."""


class DiskFullError(TuneloopError):
    """The disk filled up while writing; the message says what was kept and how to go on."""


class MissingDependencyError(TuneloopError):
    """An optional package or system program is needed; the message gives the install command."""


class NotBuiltYetError(TuneloopError):
    """A pipeline stage that this version of tuneloop does not implement yet."""

    exit_code = 3


class ExportError(TuneloopError):
    """An exported or quantized model does not reproduce its source within tolerance."""


class MonitoringError(TuneloopError):
    """Prometheus did not start, cannot be reached, or refused a query."""
