"""The two kinds of user mistake a job reports as one clear line (exit status 2), before or
instead of a stack trace: a configuration error naming the key, an input error naming the file."""


class ConfigError(ValueError):
    """A configuration mistake; the message names the key (and where it was set)."""


class InputError(ValueError):
    """An input that is missing or unusable; the message names the file (or key) and the problem."""
