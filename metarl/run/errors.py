"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (config, files, arguments): the message names the problem and the
    fix. The CLI prints ``error: <message>`` and exits with code 2, without a traceback."""
