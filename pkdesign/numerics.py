"""Numerical conventions shared by the FIM results and the criteria (a leaf module).

One threshold decides whether a FIM is singular, wherever it is asked (``FIMResult.null_directions``,
``nonsingular`` in the criteria): the diagonally scaled FIM D^-1/2 F D^-1/2 (so that parameter units
do not matter) is singular when its smallest eigenvalue is at most ``SINGULAR_RTOL`` times its
largest, or when a diagonal entry is not positive.  Both decide it from ``numpy.linalg.eigvalsh`` of that matrix
(``null_directions`` then computes the eigenvectors of a singular one only), so a design that passes one check
passes the other.
"""

SINGULAR_RTOL = 1e-10
