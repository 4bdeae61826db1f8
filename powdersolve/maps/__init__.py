"""Map analysis used by prediction, solving and evaluation alike: a density map's peaks and the
electrons in them (:mod:`~powdersolve.maps.peaks`), its lattice centring (:mod:`~powdersolve.maps.centring`),
its formula units per cell (:mod:`~powdersolve.maps.formula_units`), its space-group symmetry
(:mod:`~powdersolve.maps.symmetry`), its absolute scale (:mod:`~powdersolve.maps.scale`), the measured
peaks on its reciprocal grid (:mod:`~powdersolve.maps.peak_sharing`), density modification
(:mod:`~powdersolve.maps.modification`), charge flipping (:mod:`~powdersolve.maps.flipping`) and
sharpening (:mod:`~powdersolve.maps.sharpen`).

Grids are fractional (voxel [i, j, k] at (i/N0, j/N1, k/N2)), lattices (3, 3) rows in Angstrom,
densities e/A^3.
"""
