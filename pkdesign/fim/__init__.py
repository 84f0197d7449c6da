"""Fisher information: FO, FOI, FOCE, FOCEI, MC and exact-MC approximations behind one switch.

``evaluate_fim`` (population FIM of a design), ``schedule_fims`` (batched per-subject FIMs of many
candidate schedules), ``individual_fim`` (fixed-effects regression) and ``FIMResult``.
"""

from ..choices import APPROXIMATIONS
from .api import evaluate_fim, individual_fim, schedule_fims
from .result import FIMResult

__all__ = ["APPROXIMATIONS", "FIMResult", "evaluate_fim", "individual_fim", "schedule_fims"]
