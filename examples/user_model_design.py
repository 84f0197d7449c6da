"""Designing for a model written in Python: a sigmoid Emax model as a plain function with its own
sensitivities (``CallableModel``), population FIM with exponential random effects, then an
optimal approximate design over concentration levels (samples at steady-state concentrations
``t`` stand for dose levels here).

Run:  python examples/user_model_design.py
"""

import numpy as np

import pkdesign as pk


def emax(psi, c, idx, regimen):
    e0, emax_, ec50, hill = psi
    return e0 + emax_ * c**hill / (ec50**hill + c**hill)


def emax_sens(psi, c, idx, regimen):
    e0, emax_, ec50, hill = psi
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(c > 0, c**hill / (ec50**hill + c**hill), 0.0)
        logc = np.where(c > 0, np.log(np.where(c > 0, c, 1.0)), 0.0)
    d = np.empty((c.size, 4))
    d[:, 0] = 1.0
    d[:, 1] = r
    d[:, 2] = -emax_ * r * (1 - r) * hill / ec50
    d[:, 3] = emax_ * r * (1 - r) * (logc - np.log(ec50))
    return d


def main():
    model = pk.CallableModel(
        emax, {"E0": 5.0, "EMAX": 80.0, "EC50": 10.0, "HILL": 2.0}, ["effect"], sensitivities=emax_sens,
        errors={"effect": {"model": "additive", "add": 4.0}},
        variability={"EMAX": 0.05, "EC50": 0.1}, name="sigmoid_emax_python")
    grid = np.array([0, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 50, 100.0])
    space = pk.SamplingSpace(3, (0.0, 100.0), grid=grid)
    r = pk.optimize_approximate(model, space, "D", fim="reduced", total_n=40, tol=1e-5)
    print(f"{r.message}")
    for g, w in zip(r.design.groups, r.weights):
        print(f"  weight {w:.3f} -> n = {g.n:>3g}: concentrations {g.times['effect'].tolist()}")
    fim = pk.evaluate_fim(model, r.design, "fo", "reduced")
    print(fim.to_frame().round(3))


if __name__ == "__main__":
    main()
