"""File formats at the edges: measured powder patterns in, density maps out."""

from powdersolve.formats.maps import WRITERS, save_npy, write_ccp4, write_chgcar, write_cube, write_map, write_xplor
from powdersolve.formats.pattern import MAX_POINTS, Pattern, make_pattern
from powdersolve.formats.patterns import READERS, read_pattern, sniff_format

__all__ = [
    "MAX_POINTS",
    "READERS",
    "WRITERS",
    "Pattern",
    "make_pattern",
    "read_pattern",
    "save_npy",
    "sniff_format",
    "write_ccp4",
    "write_chgcar",
    "write_cube",
    "write_map",
    "write_xplor",
]
