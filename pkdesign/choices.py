"""The library's vocabularies, in one place: every list of accepted names (the CLI offers exactly these).

A leaf module (imports nothing), so that the command line can build its argument parser without
importing the numerical modules.
"""

#: FIM approximations (``evaluate_fim(approximation=...)``)
APPROXIMATIONS = ("fo", "foi", "foce", "focei", "mc", "exact-mc")
#: approximations that evaluate many candidate schedules in one batch (design search)
BATCHED_APPROXIMATIONS = ("fo", "foi", "foce", "focei", "mc")
#: FIM types: full, or reduced (block-diagonal, ∂V/∂θ dropped)
FIM_TYPES = ("full", "reduced")
#: what `pkdesign evaluate --fim` also offers: per group, the individual FIM (fixed effects, random effects
#: ignored) or the Bayesian (MAP) FIM of the random effects with the predicted shrinkage
SUBJECT_FIM_TYPES = ("individual", "bayesian")
#: scales of the Ω and σ entries of a FIM result
SCALES = ("variance", "sd", "declared")
#: design criteria by name
CRITERIA = ("D", "Ds", "A", "ED", "ELD")
#: exact-design algorithms (sampling times of fixed groups)
EXACT_ALGORITHMS = ("continuous", "exchange")
#: approximate-design algorithms (weights over candidate schedules)
APPROXIMATE_ALGORITHMS = ("fedorov-wynn", "multiplicative")

#: the default FIM type of every entry point (API and CLI, ``fim=None``) for the linearisations (MC and
#: exact-MC have only the full FIM, their default): the reduced (block-diagonal) FIM, as in PopED
#: (``fim.calc.type = 1``) and PFIM.  On warfarin it is also the FO variant closest to the exact
#: (Monte-Carlo) FIM (``pkdesign evaluate warfarin --compare``); the full FIM is one flag away.
DEFAULT_FIM = "reduced"
