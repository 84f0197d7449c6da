"""The library's vocabularies, in one place: every list of accepted names (the CLI offers exactly these).

A leaf module (imports nothing), so that the command line can build its argument parser without
importing the numerical modules.
"""

#: FIM approximations (``evaluate_fim(approximation=...)``)
APPROXIMATIONS = ("fo", "foi", "foce", "focei", "mc", "exact-mc")
#: approximations that evaluate many candidate schedules in one batch (design search)
BATCHED_APPROXIMATIONS = ("fo", "foi")
#: FIM types: full, or reduced (block-diagonal, ∂V/∂θ dropped)
FIM_TYPES = ("full", "reduced")
#: scales of the Ω and σ entries of a FIM result
SCALES = ("variance", "sd", "declared")
#: design criteria by name
CRITERIA = ("D", "Ds", "A", "ED")
#: exact-design algorithms (sampling times of fixed groups)
EXACT_ALGORITHMS = ("continuous", "exchange")
#: approximate-design algorithms (weights over candidate schedules)
APPROXIMATE_ALGORITHMS = ("fedorov-wynn", "multiplicative")
