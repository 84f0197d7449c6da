"""The model protocol: what every model kind (closed form, ODE, Python callable) offers the FIM code.

``CompiledModel``, ``OdeModel`` and ``CallableModel`` follow it, with their input checks in one
place (:func:`pkdesign.model.runtime.prepare_inputs`) and their output arrays built by one helper
(``output_buffers``, which also checks ``out=``).  A model of one's own can follow it too.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class PredictionModel(Protocol):
    """Predictions and their ψ-derivatives for batches of individual parameter vectors.

    Attributes: ``spec`` (``ModelSpec``: parameters, variability, outputs and their error models),
    ``parameter_names`` (list, ψ order), ``output_names`` (list), ``n_psi`` (int).

    ``evaluate(psi, times, regimen=None, output=None, order=1, out=None)``: ``psi`` (n_vec, n_psi) or
    (n_psi,); ``times`` (n_obs,) >= 0; ``regimen`` the doses (``Regimen``) or None; ``output`` per
    observation, names or indices (default: the first output); ``order`` 0, 1 or 2; ``out`` a dict of
    preallocated float64 arrays.  Returns a dict: ``f`` (n_vec, n_obs); order >= 1: ``d1`` (n_vec, n_obs,
    n_psi) and ``dt`` (n_vec, n_obs) where the model gives it; order 2: ``d2`` (n_vec, n_obs, n_psi, n_psi).
    A 1-D ``psi`` drops the leading axis.  Bad input raises ``DesignError`` naming it.
    """

    spec: object
    parameter_names: list
    output_names: list
    n_psi: int

    def evaluate(self, psi, times, regimen=None, output=None, order: int = 1, out=None) -> dict:
        ...


class ModelDisplay:
    """How a model object reads: its spec's one-line repr, summary, parameter table and HTML table."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {repr(self.spec)[1:-1]}>"

    def summary(self) -> str:
        return f"{type(self).__name__}\n{self.spec.summary()}"

    def to_frame(self):
        return self.spec.to_frame()

    def _repr_html_(self) -> str:
        return self.spec._repr_html_()


class PicklesBySpec:
    """Generated-kernel models travel to other processes (process pools, Dask workers) by their spec: the
    worker's ``compile_model`` loads the kernels from the disk cache (verified), compiling them if absent."""

    def __reduce__(self):
        from .factory import compile_model

        return (compile_model, (self.spec,))
