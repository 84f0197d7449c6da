"""Design searches: exact designs (``optimize_design``: exchange, continuous) and approximate
designs over candidate schedules (``optimize_approximate``: Fedorov–Wynn, multiplicative), with
``DesignResult`` and efficient rounding (``apportion``)."""

from ..choices import APPROXIMATE_ALGORITHMS, EXACT_ALGORITHMS
from .approximate import optimize_approximate
from .driver import optimize_design
from .result import DesignResult, Status
from .rounding import apportion

__all__ = ["APPROXIMATE_ALGORITHMS", "EXACT_ALGORITHMS", "DesignResult", "Status", "apportion",
           "optimize_approximate", "optimize_design"]
