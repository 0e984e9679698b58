"""User-facing errors.

Every error a user can fix (a bad YAML key, missing data, an unreachable device) is an
``HpoError`` whose message is one sentence naming the file, key or value and how to fix it.
The CLI prints the message and exits with code 2, with no traceback; the library never exits.
"""


class HpoError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits 2."""


class ConfigError(HpoError):
    """A study or search-space file, or a command-line value, is invalid."""


class DataNotFoundError(HpoError):
    """The dataset is not where it was looked for."""


class WeightsNotFoundError(HpoError):
    """Pretrained weights are neither cached nor downloadable."""


class DeviceError(HpoError):
    """A requested device (e.g. cuda:3) does not exist or cannot be used."""
