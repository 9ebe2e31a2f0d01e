"""The one exception type a user can cause.

Anything raised as :class:`NasError` is a problem with the user's input (a file, a value,
a path), not a bug: the CLI prints its message as a single line and exits with code 2, so
messages must name the file and the problem and need no traceback to be understood.
"""


class NasError(Exception):
    """A problem with the user's input; its message names the file (or value) and the problem."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C in a long command; its message says what was kept and how to resume.

    A KeyboardInterrupt still (so nothing that catches Exception swallows it); the CLI prints
    it as one line, ``nas: interrupted: <message>``, and exits with code 130.
    """


class NasWarning(UserWarning):
    """Something the user should know that does not stop the work; the CLI prints it as one line."""
