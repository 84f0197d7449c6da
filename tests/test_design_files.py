"""Design files: exact save/load round trips (TOML, JSON), the [space] and [prior] tables as the one
vocabulary of sampling spaces (file and CLI flags alike), and bad design files."""

import json
import math

import numpy as np
import pytest

import pkdesign as pk
from pkdesign import cli
from pkdesign.designfile import read_design_file
from pkdesign.errors import DesignError

WARFARIN = """
[[groups]]
name = "g1"
n = 32
times = [0.5, 2, 3, 6, 24, 36, 72, 120]
dose = { amount = 70 }
"""


def _odd_design():
    # floats that a decimal printout would not round-trip; two outputs; infusion; repeated doses
    r = pk.Regimen.from_dict({"amount": [1 / 3, 2.5e-7], "times": [0.0, 12.125], "duration": [0.1, 0.0]})
    g1 = pk.Group(17.0, {"conc": np.array([1 / 7, 0.1 + 0.2, 3.0]), "effect": np.array([2.0, 1e-9 + 5])}, r, "arm A")
    g2 = pk.Group(0.3333333333333333, {"conc": np.array([24.0])}, pk.Regimen(), 'quote " name')
    return pk.Design((g1, g2), window=(0.0, 1e3 / 3))


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_save_load_round_trip_is_exact(tmp_path, suffix):
    d = _odd_design()
    path = d.save(tmp_path / f"design{suffix}")
    back = pk.Design.load(path)  # no model needed: outputs are named
    assert back.window == d.window and len(back.groups) == 2
    for a, b in zip(d.groups, back.groups):
        assert a.name == b.name and a.n == b.n and list(a.times) == list(b.times)
        for k in a.times:
            assert np.array_equal(a.times[k], b.times[k])  # bit for bit
        for f in ("times", "amounts", "durations"):
            assert np.array_equal(getattr(a.regimen, f), getattr(b.regimen, f))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_saved_design_gives_the_same_fim(tmp_path):
    model = pk.compile_model(pk.load_model("warfarin"))
    d = model.spec.default_design
    back = pk.Design.load(d.save(tmp_path / "w.toml"))
    a = pk.evaluate_fim(model, d, fim="reduced").logdet
    assert a == pk.evaluate_fim(model, back, fim="reduced").logdet
    assert abs(a - 55.3964499762) < 1e-8  # PopED, reduced FIM (tests/test_poped.py)


def test_plain_list_times_need_the_model(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text(WARFARIN)
    with pytest.raises(DesignError, match="plain list needs the model"):
        pk.Design.load(p)
    d = pk.Design.load(p, pk.load_model("warfarin"))
    assert list(d.groups[0].times) == ["conc"]


def test_save_to_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DesignError, match="does not exist"):
        _odd_design().save(tmp_path / "nope" / "d.toml")


def test_space_table_builds_the_same_spaces_as_keywords(tmp_path):
    spec = pk.load_model("warfarin")
    p = tmp_path / "d.toml"
    p.write_text(WARFARIN + """
[space]
window = [0, 120]
min_spacing = 0.5
grid = { start = 0, stop = 120, num = 241 }
[space.groups.g1]
fixed = [0.5]
""")
    df = read_design_file(p, spec.output_names)
    sp = df.exact_space(spec.output_names)["g1"]
    assert sp.min_spacing == 0.5 and sp.grid.size == 241 and sp.windows[0] == (0.0, 120.0)
    assert np.array_equal(sp.fixed, [0.5])
    model = pk.compile_model(spec)
    a = pk.optimize_design(model, df.design, fim="reduced", algorithm="exchange", starts=1,
                           space=df.exact_space(spec.output_names))
    b = pk.optimize_design(model, df.design, fim="reduced", algorithm="exchange", starts=1, window=(0, 120),
                           min_spacing=0.5, grid=np.linspace(0, 120, 241), fixed={"g1": [0.5]})
    assert a.criterion_value == b.criterion_value
    assert 0.5 in a.design.groups[0].times["conc"]  # the fixed sample stayed
    approx = df.approximate_spaces(spec.output_names, {"samples": 3})
    assert approx[0].n_samples == 3 and approx[0].grid.size == 241


def test_cli_flags_and_design_file_space_agree(tmp_path, capsys):
    p = tmp_path / "d.toml"
    p.write_text(WARFARIN + "[space]\nwindow = [0, 96]\nmin_spacing = 1.0\n")
    base = ["optimize", "warfarin", "--fim", "reduced", "--algorithm", "exchange", "--starts", "1", "--json"]
    assert cli.main(base + ["--design", str(p)]) == 0
    from_file = json.loads(capsys.readouterr().out)
    q = tmp_path / "plain.toml"
    q.write_text(WARFARIN)
    assert cli.main(base + ["--design", str(q), "--window", "0", "96", "--min-spacing", "1"]) == 0
    from_flags = json.loads(capsys.readouterr().out)
    assert from_file["criterion_value"] == from_flags["criterion_value"]
    times = from_file["design"]["groups"][0]["times"]["conc"]
    assert max(times) <= 96 and min(np.diff(times)) >= 1.0 - 1e-9


def test_prior_table_drives_an_ed_design(tmp_path, capsys):
    p = tmp_path / "d.toml"
    p.write_text(WARFARIN + '[prior]\nCL = ["lognormal", 0.15, 0.1]\nKA = { distribution = "uniform", a = 0.8, b = 1.2 }\n')
    df = read_design_file(p, ["conc"])
    assert df.prior.spec == {"CL": ("lognormal", 0.15, 0.1), "KA": ("uniform", 0.8, 1.2)}
    argv = ["optimize", "warfarin", "--fim", "reduced", "--criterion", "ED", "--algorithm", "exchange", "--starts",
            "1", "--prior-draws", "4", "--json"]
    assert cli.main(argv + ["--design", str(p)]) == 0
    a = json.loads(capsys.readouterr().out)
    q = tmp_path / "plain.toml"
    q.write_text(WARFARIN)
    assert cli.main(argv + ["--design", str(q), "--prior", "CL=lognormal:0.15:0.1;KA=uniform:0.8:1.2"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert a["criterion"] == "ED" and math.isfinite(a["criterion_value"])
    assert a["criterion_value"] == b["criterion_value"]


@pytest.mark.parametrize("extra, message", [
    ("[space]\nwindows_ = [0, 1]\n", r"space: unknown key\(s\) \['windows_'\]"),
    ("[space]\ngrid = { start = 5, stop = 1, num = 3 }\n", r"space.grid: needs finite 0 <= start < stop"),
    ("[space]\nsamples = 0\n", r"space.samples: expected a whole number"),
    ("[space]\nmin_spacing = -1\n", r"space.min_spacing: expected a finite number >= 0"),
    ("[space]\noutput = 3\n", r"space.output: expected an output name"),
    ("[space.groups.g1]\nwindow = [3, 1]\n", r"space.groups.g1.window: expected \[lo, hi\]"),
    ("[prior]\nCL = ['beta', 1, 2]\n", r"prior.CL: expected \(distribution, a, b\)"),
    ("[prior]\nCL = { distribution = 'normal', mean = 1 }\n", r"prior.CL: expected \{distribution, a, b\}"),
])
def test_bad_space_and_prior_tables(tmp_path, extra, message):
    p = tmp_path / "d.toml"
    p.write_text(WARFARIN + extra)
    with pytest.raises(DesignError, match=message):
        read_design_file(p, ["conc"])


def test_space_for_a_group_the_design_does_not_have(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text(WARFARIN + "[space.groups.nope]\nwindow = [0, 10]\n")
    with pytest.raises(DesignError, match=r"space.groups names unknown group\(s\) \['nope'\]; the design has \['g1'\]"):
        read_design_file(p, ["conc"])
    model = pk.compile_model(pk.load_model("warfarin"))
    with pytest.raises(DesignError, match=r"space names unknown group\(s\) \['nope'\]"):
        pk.optimize_design(model, space={"nope": pk.SamplingSpace(1, (0, 10))})


def test_cost_normalised_design_from_the_cli_equals_the_api(tmp_path, capsys):
    p = tmp_path / "d.toml"
    p.write_text(WARFARIN + "[space]\nwindow = [0, 120]\ngrid = { start = 0, stop = 120, num = 13 }\nsamples = 3\n"
                 "cost_subject = 1.0\ncost_sample = 0.5\n")
    assert cli.main(["optimize", "warfarin", "--design", str(p), "--algorithm", "fedorov-wynn", "--cost-normalised",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    model = pk.compile_model(pk.load_model("warfarin"))
    df = read_design_file(p, ["conc"])
    r = pk.optimize_approximate(model, df.approximate_spaces(["conc"]), cost_normalised=True)
    assert out["criterion_value"] == pytest.approx(r.criterion_value, rel=1e-12) and out["equivalence_holds"]
    assert df.approximate_spaces(["conc"])[0].cost == 2.5  # 1 + 3 samples x 0.5


PKPD = """
[[groups]]
name = "100 mg"
n = 30
times = { conc = [1, 4, 12], effect = [2, 8, 24] }
dose = 100
[[groups]]
name = "300 mg"
n = 30
times = { conc = [1, 4, 12], effect = [2, 8, 24] }
dose = 300
[space]
window = [0.25, 24]
grid = { start = 0.25, stop = 24, num = 7 }
samples = { conc = 2, effect = 2 }
"""


def test_joint_pk_pd_protocols_over_dose_levels(tmp_path, capsys):
    # candidates: dose level (arm) x PK times x PD times; the certificate is checked over all of them
    p = tmp_path / "pkpd.toml"
    p.write_text(PKPD)
    model = pk.compile_model(pk.load_model("effect_compartment"))
    df = read_design_file(p, model.spec.output_names)
    spaces = df.approximate_spaces(model.spec.output_names)
    assert spaces[0].samples_per_output == {"conc": 2, "effect": 2}
    T = pk.candidate_schedules(spaces[0])
    assert T.shape == (21 * 21, 4)  # C(7,2) PK pairs x C(7,2) PD pairs
    r = pk.optimize_approximate(model, spaces, total_n=60)
    assert r.status == pk.Status.CONVERGED and r.certificate.holds
    assert r.certificate.sensitivity_max <= r.certificate.bound * (1 + 1e-4)
    for g in r.design.groups:  # every support point is a full protocol: 2 PK and 2 PD samples
        assert g.times["conc"].size == 2 and g.times["effect"].size == 2
    # the information of the design is that of its protocols, as evaluate_fim sees them
    M = pk.evaluate_fim(model, r.rounded_design(60)).matrix
    assert np.isfinite(np.linalg.slogdet(M)[1])
    assert cli.main(["optimize", "effect_compartment", "--design", str(p), "--algorithm", "fedorov-wynn",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["criterion_value"] == pytest.approx(r.criterion_value, rel=1e-9) and out["equivalence_holds"]


def test_protocol_space_bad_input():
    with pytest.raises(DesignError, match="adds up to"):
        pk.SamplingSpace(3, (0, 10), grid=np.arange(11.0), samples_per_output={"a": 1, "b": 1})
    with pytest.raises(DesignError, match="no fixed samples"):
        pk.SamplingSpace(2, (0, 10), grid=np.arange(11.0), samples_per_output={"a": 1, "b": 1}, fixed=[1.0])
    model = pk.compile_model(pk.load_model("effect_compartment"))
    sp_ = pk.SamplingSpace(2, (0, 10), grid=np.arange(11.0), samples_per_output={"conc": 1, "bogus": 1},
                           regimen=pk.Regimen.single(100))
    with pytest.raises(DesignError, match=r"unknown output\(s\) \['bogus'\]"):
        pk.optimize_approximate(model, sp_)
