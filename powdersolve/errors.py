"""Error types and exit codes shared by every command.

Every failure a user can cause is raised as a :class:`PowdersolveError` subclass whose message is
one line naming the file, the problem and the fix. The CLI prints it and exits with ``exit_code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from powdersolve.indexing import CellSolution

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


class NoModelError(InputError):
    """No shipped model serves the cell's crystal system (the network-free path may: ``powdersolve flip``).

    Attributes:
        indexed: the indexed cell that no model serves, when the cell was indexed (so it is not indexed again).
    """

    def __init__(self, message: str, indexed: CellSolution | None = None) -> None:
        super().__init__(message)
        self.indexed = indexed


class OutputError(PowdersolveError):
    """The output location cannot be written or already holds results."""

    exit_code = EXIT_OUTPUT


class NoSolutionError(PowdersolveError):
    """The solver abstains: no candidate fits the pattern well enough."""

    exit_code = EXIT_NO_SOLUTION
