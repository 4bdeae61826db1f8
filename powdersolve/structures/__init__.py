"""Crystal structures: reading, standardising, generating, excluding and splitting."""

from powdersolve.structures.crystal import Crystal
from powdersolve.structures.io import (
    crystal_system,
    deduplicate,
    is_chiral,
    iter_structure_files,
    lattice_system,
    load_crystal,
    read_structure,
    standardize,
)

__all__ = [
    "Crystal",
    "crystal_system",
    "deduplicate",
    "is_chiral",
    "iter_structure_files",
    "lattice_system",
    "load_crystal",
    "read_structure",
    "standardize",
]
