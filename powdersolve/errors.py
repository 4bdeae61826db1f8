"""Error types and exit codes shared by every command.

Every failure a user can cause is raised as a :class:`PowdersolveError` subclass whose message is
one line naming the file, the problem and the fix. The CLI prints it and exits with ``exit_code``.
"""

from __future__ import annotations

#: Exit codes documented in README.md.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_NO_SOLUTION = 3
EXIT_OUTPUT = 4


class PowdersolveError(Exception):
    """Base class of all errors the tool reports without a traceback."""

    exit_code = EXIT_INTERNAL


class InputError(PowdersolveError, ValueError):
    """Bad user input: unreadable file, malformed formula, impossible argument."""

    exit_code = EXIT_BAD_INPUT


class TooLargeError(InputError):
    """A computation would exceed its memory guard (e.g. profile points x reflections of a refinement)."""


class ModificationError(InputError):
    """Density modification has nothing to work with (no measured peak on a reflection of the cell)."""


class OutputError(PowdersolveError):
    """The output location cannot be written or already holds results."""

    exit_code = EXIT_OUTPUT


class NoSolutionError(PowdersolveError):
    """The solver abstains: no candidate fits the pattern well enough."""

    exit_code = EXIT_NO_SOLUTION
