"""Designs as NONMEM-format datasets (issue 16, export): rows, amounts, times, flags, the trough convention,
covariate and occasion columns, simulated DV (seeded), and the CLI."""

import numpy as np
import pandas as pd
import pytest

import pkdesign as pk
from pkdesign import cli
from pkdesign.errors import DesignError

from .conftest import compiled


def test_warfarin_design_as_a_dataset(tmp_path):
    spec, model = compiled("warfarin")
    d = spec.default_design
    frame = d.to_dataset(model)
    assert list(frame.columns) == ["ID", "TIME", "AMT", "RATE", "DV", "MDV", "EVID", "CMT", "DVID", "GRP"]
    assert len(frame) == 32 * 9 and frame["ID"].nunique() == 32
    one = frame[frame.ID == 1]
    assert one["TIME"].tolist() == [0, 0.5, 1, 2, 6, 24, 36, 72, 120]
    assert one["AMT"].tolist() == [70] + [0] * 8 and one["EVID"].tolist() == [1] + [0] * 8
    assert one["MDV"].tolist() == [1] + [0] * 8 and one["CMT"].tolist() == [1] + [2] * 8  # depot, central
    assert (frame["DV"] == 0).all() and set(frame["DVID"]) == {0, 1}
    path = pk.write_dataset(frame, tmp_path / "w.csv")
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_troughs_come_before_the_dose_and_occasions_are_numbered():
    spec, model = compiled("one_comp_oral_iov")
    frame = spec.default_design.to_dataset(model)
    one = frame[frame.ID == 1].reset_index(drop=True)
    at240 = one[one.TIME == 240]
    assert at240["EVID"].tolist() == [0, 1]  # the sample (trough) first, then the dose
    assert one.loc[one.TIME == 144, "OCC"].tolist() == [2] and one.loc[one.TIME == 120, "OCC"].tolist() == [1]
    assert (one.loc[one.EVID == 1, "AMT"] == 20).all() and (one.EVID == 1).sum() == 11


def test_covariates_are_columns_and_distributions_are_apportioned():
    spec, model = compiled("warfarin_covariate")
    g = pk.Group(10, {"conc": [1, 24]}, pk.Regimen.single(70.0), "mixed",
                 {"WT": {"values": [55, 95], "proportions": [0.3, 0.7]}})
    frame = pk.Design((g,)).to_dataset(model)
    per_subject = frame.groupby("ID")["WT"].first()
    assert sorted(per_subject.tolist()) == [55.0] * 3 + [95.0] * 7


def test_infusions_have_a_rate():
    spec, model = compiled("one_comp_infusion")
    frame = spec.default_design.to_dataset(model)
    doses = frame[frame.EVID == 1]
    regimen = spec.default_design.groups[0].regimen
    assert np.allclose(doses["RATE"].iloc[0], regimen.amounts[0] / regimen.durations[0])


def test_simulated_dv_is_seeded_and_centred_on_the_model():
    spec, model = compiled("warfarin")
    d = spec.default_design
    a = d.to_dataset(model, simulate=True, seed=4)
    b = d.to_dataset(model, simulate=True, seed=4)
    c = d.to_dataset(model, simulate=True, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not np.array_equal(a["DV"], c["DV"])
    many = d.to_dataset(model, simulate=True, replicates=100, seed=1)
    assert many["REP"].max() == 100 and len(many) == 100 * 288
    obs = many[many.EVID == 0]
    f0 = model.evaluate(spec.theta, np.array([24.0]), d.groups[0].regimen, order=0)["f"][0]
    median = obs.loc[obs.TIME == 24, "DV"].median()  # log-normal parameters: the median is near the typical curve
    assert abs(median / f0 - 1) < 0.08, (median, f0)


def test_bad_dataset_requests(tmp_path, capsys):
    spec, model = compiled("warfarin")
    with pytest.raises(DesignError, match="replicates"):
        spec.default_design.to_dataset(model, replicates=0)
    g = pk.Group(2.5, {"conc": [1.0]}, pk.Regimen.single(70.0), "w")
    with pytest.raises(DesignError, match="not a whole number of subjects"):
        pk.Design((g,)).to_dataset(model)
    rc = cli.main(["dataset", "warfarin", "-o", str(tmp_path / "missing" / "d.csv")])
    assert rc == 2 and "folder" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_dataset_command(tmp_path, capsys):
    out = tmp_path / "d.csv"
    assert cli.main(["dataset", "warfarin", "--simulate", "--replicates", "2", "--seed", "3", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "576 rows" in text and "$INPUT REP ID TIME" in text
    assert pd.read_csv(out)["REP"].max() == 2
