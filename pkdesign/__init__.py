"""pkdesign: optimal design of pharmacokinetic/pharmacodynamic studies.

The public API is re-exported here; everything else is private.  Names are imported on first use
(PEP 562), so ``import pkdesign`` loads neither sympy, numba, scipy nor pandas: a command or script
pays only for what it uses.
"""

from __future__ import annotations

import importlib

from ._version import __version__

#: public name -> module that defines it
_EXPORTS = {
    **dict.fromkeys(('ACriterion', 'Criterion', 'DCriterion', 'DsCriterion', 'EDCriterion', 'ELDCriterion',
                    'make_criterion'), ".criteria"),
    **dict.fromkeys(('CCriterion', 'LCriterion'), ".c_optimality"),
    **dict.fromkeys(('derived_table',), ".derived"),
    **dict.fromkeys(('bayesian_fim',), ".fim.bayesian"),
    **dict.fromkeys(('power_curve', 'sample_size', 'wald_power'), ".power"),
    **dict.fromkeys(('to_dataset', 'write_dataset'), ".dataset"),
    **dict.fromkeys(('sse', 'SSEResult'), ".reestimation"),
    **dict.fromkeys(('from_nonmem', 'nonmem_to_toml'), ".io.nonmem"),
    **dict.fromkeys(('WindowEfficiency', 'window_efficiency', 'optimize_window_width'), ".windows"),
    **dict.fromkeys(('Design', 'Group'), ".design"),
    **dict.fromkeys(('Regimen', 'check_times'), ".regimen"),
    **dict.fromkeys(('DesignFile', 'read_design_file'), ".designfile"),
    **dict.fromkeys(('Certificate', 'certificate', 'sensitivity'), ".equivalence"),
    **dict.fromkeys(('DesignError', 'ExpressionError', 'ModelSpecError', 'NonIdentifiableError', 'PkdesignError', 'SearchError'), ".errors"),
    **dict.fromkeys(('APPROXIMATIONS', 'FIMResult', 'evaluate_fim', 'individual_fim', 'schedule_fims'), ".fim"),
    **dict.fromkeys(('fim_evaluator', 'FIMEvaluator'), ".fim.evaluator"),
    **dict.fromkeys(('load_design', 'load_model', 'models_dir'), ".library"),
    **dict.fromkeys(('CallableModel', 'CompiledModel', 'ModelSpec', 'OdeModel', 'PredictionModel', 'compile_model', 'model_from_sympy', 'parse_expression', 'parse_model_text'), ".model"),
    **dict.fromkeys(('Prior',), ".prior"),
    **dict.fromkeys(('compare', 'efficiency'), ".comparison"),
    **dict.fromkeys(('Report', 'build_report'), ".document"),
    **dict.fromkeys(('simulate',), ".simulation"),
    **dict.fromkeys(('approximation_report',), ".report"),
    **dict.fromkeys(('DesignResult', 'Status', 'apportion', 'optimize_approximate', 'optimize_design'), ".search"),
    **dict.fromkeys(('SamplingSpace', 'candidate_schedules', 'dose_levels'), ".space"),
}

__all__ = ["__version__", *_EXPORTS]


#: submodules reachable as attributes (``pk.plot.predictions(...)``)
_SUBMODULES = ("plot", "report")


def __getattr__(name: str):
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
        globals()[name] = value
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pkdesign' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
