"""pkdesign: optimal design of pharmacokinetic/pharmacodynamic studies.

The public API is re-exported here; everything else is private.
"""

from ._version import __version__  # noqa: E402

from .criteria import ACriterion, Criterion, DCriterion, DsCriterion, EDCriterion, make_criterion  # noqa: E402
from .design import Design, Group, Regimen, check_times  # noqa: E402
from .designfile import DesignFile, read_design_file  # noqa: E402
from .equivalence import Certificate, certificate, sensitivity  # noqa: E402
from .errors import (  # noqa: E402
    DesignError,
    ExpressionError,
    ModelSpecError,
    NonIdentifiableError,
    PkdesignError,
    SearchError,
)
from .fim import (  # noqa: E402
    APPROXIMATIONS,
    FIMResult,
    evaluate_fim,
    individual_fim,
    schedule_fims,
)
from .library import load_design, load_model, models_dir  # noqa: E402
from .model import (  # noqa: E402
    CallableModel,
    CompiledModel,
    ModelSpec,
    OdeModel,
    PredictionModel,
    compile_model,
    model_from_sympy,
    parse_expression,
    parse_model_text,
)

from .prior import Prior  # noqa: E402
from .report import approximation_report  # noqa: E402
from .search import DesignResult, Status, apportion, optimize_approximate, optimize_design  # noqa: E402
from .space import SamplingSpace, candidate_schedules  # noqa: E402

__all__ = [
    "__version__",
    "ACriterion",
    "Certificate",
    "Criterion",
    "DCriterion",
    "DesignResult",
    "DsCriterion",
    "EDCriterion",
    "Prior",
    "SamplingSpace",
    "Status",
    "apportion",
    "approximation_report",
    "candidate_schedules",
    "read_design_file",
    "certificate",
    "make_criterion",
    "optimize_approximate",
    "optimize_design",
    "sensitivity",
    "APPROXIMATIONS",
    "FIMResult",
    "evaluate_fim",
    "individual_fim",
    "schedule_fims",
    "CallableModel",
    "CompiledModel",
    "Design",
    "DesignFile",
    "DesignError",
    "ExpressionError",
    "Group",
    "ModelSpec",
    "ModelSpecError",
    "NonIdentifiableError",
    "OdeModel",
    "PredictionModel",
    "PkdesignError",
    "Regimen",
    "SearchError",
    "check_times",
    "compile_model",
    "load_design",
    "load_model",
    "models_dir",
    "model_from_sympy",
    "parse_expression",
    "parse_model_text",
]
