"""powdersolve: crystal structure solution from powder X-ray diffraction.

Pipeline: structures -> diffraction -> density -> dataset -> model -> train -> evaluate ->
predict -> solve. The CLI (`powdersolve --help`) mirrors this API.
"""

from powdersolve.errors import InputError, NoSolutionError, OutputError, PowdersolveError

__version__ = "0.1.0"

__all__ = ["InputError", "NoSolutionError", "OutputError", "PowdersolveError", "__version__"]
