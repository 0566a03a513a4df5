"""Exceptions that mark a user's mistake rather than a bug.

The command-line tool prints a :class:`UserError` as one line on stderr and
exits with status 2; any other exception is an internal error (status 1).
"""


class UserError(ValueError):
    """Bad input from the user: a file, key, value or flag that cannot be used.

    The message names what was wrong (file, system, frame, key) and, where
    possible, how to fix it. It is shown to the user as a single line.
    """
