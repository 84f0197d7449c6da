"""Doses and group sizes as decisions, on a one-compartment model with Michaelis-Menten elimination (where
the dose changes what the samples say about VM and KM: the information is not linear in the dose).

Checks: the search with free doses is at least as good as the best common fixed dose (each with optimised
times); the dose gradient matches finite differences of the criterion; the integer allocation equals the
best split found by enumeration; the approximate design over (dose level x schedule) candidates satisfies the
equivalence theorem (Kiefer-Wolfowitz; the certificate is checked by the search) and beats every single
level's optimum."""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.errors import DesignError, SearchError
from pkdesign.search.allocation import allocate_sizes
from pkdesign.search.exact import ScheduleProblem
from pkdesign.space import exact_spaces

LEVELS = [25, 50, 100, 200, 400, 800]
WINDOW = (0.25, 48)


@pytest.fixture(scope="module")
def mm():
    return pk.compile_model(pk.load_model("one_comp_mm_iv"))


def _common_dose(design, amount):
    return pk.Design(tuple(g.__class__(g.n, g.times, pk.Regimen.single(float(amount)), g.name) for g in design.groups))


def test_free_doses_and_sizes_beat_every_fixed_dose(mm):
    d = mm.spec.default_design
    fixed = [pk.optimize_design(mm, _common_dose(d, a), starts=1, window=WINDOW).criterion_value for a in LEVELS]
    bounds = {g.name: (10.0, 1000.0) for g in d.groups}
    res = pk.optimize_design(mm, d, starts=1, window=WINDOW, doses=bounds, total_n=40)
    assert res.criterion_value >= max(fixed) - 1e-6, (res.criterion_value, fixed)
    amounts = [float(g.regimen.amounts[0]) for g in res.design.groups]
    assert all(10 <= a <= 1000 for a in amounts)
    assert sum(g.n for g in res.design.groups) == 40 and all(g.n >= 1 for g in res.design.groups)
    assert abs(pk.evaluate_fim(mm, res.design).logdet - res.criterion_value) < 1e-8
    assert "group sizes" in res.message


def test_discrete_dose_levels_stay_on_their_levels(mm):
    d = mm.spec.default_design
    res = pk.optimize_design(mm, d, starts=1, window=WINDOW, doses={g.name: LEVELS for g in d.groups})
    for g in res.design.groups:
        assert float(g.regimen.amounts[0]) in LEVELS


def test_dose_gradient_matches_finite_differences(mm):
    d = mm.spec.default_design
    spaces = exact_spaces(d, mm.spec.output_names, window=WINDOW)
    problem = ScheduleProblem(mm, d, "D", spaces=spaces, doses={g.name: (10.0, 1000.0) for g in d.groups})
    x = problem.repair(problem.x0())
    _, grad = problem.value_and_gradient(x)
    for i in range(problem.n_times, problem.n_free):
        h = 1e-4 * x[i]
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fd = (problem.value(xp) - problem.value(xm)) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-4, abs=1e-9)


def test_allocation_equals_enumeration(mm):
    d = mm.spec.default_design
    spaces = exact_spaces(d, mm.spec.output_names, window=WINDOW)
    problem = ScheduleProblem(mm, d, "D", spaces=spaces)
    x = problem.x0()
    sizes, value, _ = allocate_sizes(problem, x, 40)
    M = [problem._group_fims(b, t[None], None)[0] for b, t in zip(problem.blocks, problem.split(x))]
    best = max((np.linalg.slogdet(k * M[0] + (40 - k) * M[1])[1], k) for k in range(1, 40))
    assert sizes == [best[1], 40 - best[1]] and value == pytest.approx(best[0], abs=1e-10)


def test_approximate_design_over_dose_levels_has_its_certificate(mm):
    grid = np.array([0.25, 0.5, 1, 2, 4, 8, 12, 24, 36, 48.0])
    sp = pk.SamplingSpace(4, WINDOW, grid=grid, regimen=pk.Regimen.single(100.0), name="iv")
    res = pk.optimize_approximate(mm, pk.dose_levels(sp, LEVELS))
    assert res.status.value == "converged" and res.certificate.holds
    assert res.certificate.efficiency_lower_bound >= 1 - 1e-4
    singles = [pk.optimize_approximate(mm, pk.dose_levels(sp, [a])).criterion_value for a in LEVELS]
    assert res.criterion_value >= max(singles) - 1e-6
    assert {float(g.regimen.amounts[0]) for g in res.design.groups} <= set(LEVELS)


@pytest.mark.parametrize("kwargs, message", [
    ({"doses": {"low dose": (-5.0, 100.0)}}, "> 0"),
    ({"doses": {"low dose": (200.0, 100.0)}}, "lo <= hi"),
    ({"doses": {"nobody": (10.0, 100.0)}}, "unknown group"),
    ({"doses": {"low dose": "big"}}, "(lo, hi) bounds or a list"),
    ({"total_n": 1}, "smaller than the 2 group(s)"),
    ({"total_n": 40.5}, "whole number"),
])
def test_bad_dose_and_size_decisions(mm, kwargs, message):
    with pytest.raises(SearchError) as exc:
        pk.optimize_design(mm, mm.spec.default_design, starts=1, window=WINDOW, **kwargs)
    assert message in str(exc.value)


def test_bad_dose_levels():
    sp = pk.SamplingSpace(2, (0, 10), grid=np.linspace(0, 10, 5), regimen=pk.Regimen.single(1.0))
    with pytest.raises(DesignError, match="amounts > 0"):
        pk.dose_levels(sp, [10, -1])
    with pytest.raises(DesignError, match="no doses"):
        pk.dose_levels(pk.SamplingSpace(2, (0, 10), grid=np.linspace(0, 10, 5)), [10])


DESIGN_FILE = """
[[groups]]
name = "low"
n = 20
dose = { amount = 50 }
times = [0.5, 1, 2, 4, 6, 8, 12]

[[groups]]
name = "high"
n = 20
dose = { amount = 500 }
times = [0.5, 2, 6, 12, 24, 36, 48]

[space]
window = [0.25, 48]
total_n = 40
[space.groups.low]
dose = [10, 1000]
[space.groups.high]
dose_levels = [100, 300, 1000]
"""


def test_design_file_states_the_decisions_and_the_cli_uses_them(tmp_path, capsys, mm):
    from pkdesign import cli
    from pkdesign.designfile import read_design_file

    path = tmp_path / "mm.toml"
    path.write_text(DESIGN_FILE)
    df = read_design_file(path, ["conc"])
    assert df.dose_decisions() == {"low": (10.0, 1000.0), "high": [100.0, 300.0, 1000.0]} and df.total_n == 40
    assert len(df.approximate_spaces(["conc"])) == 1 + 3  # one space per level of the "high" group
    rc = cli.main(["optimize", "one_comp_mm_iv", "--design", str(path), "--starts", "1", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    import json

    res = json.loads(out)
    groups = res["design"]["groups"]
    assert sum(g["n"] for g in groups) == 40
    assert groups[1]["dose"]["amount"][0] in (100.0, 300.0, 1000.0)
    assert 10 <= groups[0]["dose"]["amount"][0] <= 1000


@pytest.mark.parametrize("edit, message", [
    (("dose = [10, 1000]", "dose = [-1, 1000]"), "0 < lo <= hi"),
    (("dose = [10, 1000]", "dose = [10, 1000]\ndose_levels = [5]"), "not both"),
    (("dose = [10, 1000]", "dose = [10, 1000]\ntotal_n = 3"), "whole design"),
    (("total_n = 40", "total_n = 0"), "whole number of subjects >= 1"),
    (("dose_levels = [100, 300, 1000]", "dose_levels = [100, -3]"), "amounts > 0"),
])
def test_bad_decisions_in_design_files(tmp_path, edit, message):
    from pkdesign.designfile import read_design_file

    path = tmp_path / "bad.toml"
    path.write_text(DESIGN_FILE.replace(*edit))
    with pytest.raises(DesignError) as exc:
        read_design_file(path, ["conc"])
    assert message in str(exc.value)


@pytest.mark.parametrize("args, message", [
    (([0.0, 24.0], [-5.0]), "amounts must be finite and > 0"),
    (([24.0, 0.0], [5.0]), "sorted"),
    (([0.0], [1.0, 2.0]), "1 dose times, 2 amounts"),
    (([0.0], [1.0], [-1.0]), "durations must be finite and >= 0"),
])
def test_a_regimen_built_directly_is_checked(args, message):
    with pytest.raises(DesignError) as exc:
        pk.Regimen(*args)
    assert message in str(exc.value)
    ok = pk.Regimen([0.0, 24.0], [70.0])  # one amount for every dose, bolus by default
    assert ok.amounts.tolist() == [70.0, 70.0] and ok.durations.tolist() == [0.0, 0.0]
