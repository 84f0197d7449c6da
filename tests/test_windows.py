"""Sampling windows: the widest windows that keep a target efficiency (PopED plot_efficiency_of_windows is
the reference for the efficiency distribution itself, tested in test_power.py), and clock-time windows in
design files."""

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.designfile import clock_window, read_design_file
from pkdesign.errors import DesignError


@pytest.fixture(scope="module")
def warfarin():
    return pk.compile_model(pk.load_model("warfarin"))


@pytest.mark.parametrize("relative, hi", [(False, 24.0), (True, 1.0)])
def test_widest_windows_meet_the_target_and_no_wider_ones_do(warfarin, relative, hi):
    d = warfarin.spec.default_design
    w = pk.optimize_window_width(warfarin, d, level=0.9, coverage=0.9, n=60, seed=2, relative=relative,
                                 max_width=hi, tol=1e-4)
    assert 0 < w.width < hi and w.fraction_above(0.9) >= 0.9
    wider = pk.window_efficiency(warfarin, d, width=w.width + 0.01 * hi, n=60, seed=2, relative=relative)
    assert wider.fraction_above(0.9) < 0.9
    same = pk.window_efficiency(warfarin, d, width=w.width, n=60, seed=2, relative=relative)
    np.testing.assert_array_equal(same.efficiencies, w.efficiencies)  # common random numbers


def test_window_width_bad_input(warfarin):
    d = warfarin.spec.default_design
    with pytest.raises(DesignError, match="level"):
        pk.optimize_window_width(warfarin, d, level=1.5)
    with pytest.raises(DesignError, match="coverage"):
        pk.optimize_window_width(warfarin, d, coverage=0)


@pytest.mark.parametrize("text, start, expected", [
    ("09:00-10:00", 8.0, [1.0, 2.0]),
    ("day 2 07:30-09:00", 8.0, [23.5, 25.0]),
    ("23:00-01:00", 8.0, [15.0, 17.0]),
    (" 8:15 - 8:45 ", 8.0, [0.25, 0.75]),
])
def test_clock_windows(text, start, expected):
    assert clock_window(text, start, "w") == pytest.approx(expected)


@pytest.mark.parametrize("text, message", [
    ("07:00-08:30", "starts before t = 0"),
    ("25:00-26:00", "HH:MM"),
    ("morning", "HH:MM-HH:MM"),
    ("day 0 09:00-10:00", "days count from 1"),
])
def test_bad_clock_windows(text, message):
    with pytest.raises(DesignError) as exc:
        clock_window(text, 8.0, "w")
    assert message in str(exc.value)


def test_design_file_clock_windows(tmp_path, warfarin):
    text = """
[[groups]]
name = "ward"
n = 32
dose = { amount = 70 }
times = [1, 6, 24, 48]

[space]
clock_start = "08:00"
[space.groups.ward]
windows = ["09:00-10:00", "13:00-15:00", "day 2 07:30-09:00", "day 3 08:00-12:00"]
"""
    path = tmp_path / "clock.toml"
    path.write_text(text)
    spaces = read_design_file(path, ["conc"]).exact_space(["conc"])
    assert spaces["ward"].windows == ((1.0, 2.0), (5.0, 7.0), (23.5, 25.0), (48.0, 52.0))
    res = pk.optimize_design(warfarin, read_design_file(path, ["conc"]).design, space=spaces, starts=1)
    t = res.design.groups[0].times["conc"]
    assert all(lo - 1e-9 <= x <= hi + 1e-9 for x, (lo, hi) in zip(t, spaces["ward"].windows))
    path.write_text(text.replace('clock_start = "08:00"\n', ""))
    with pytest.raises(DesignError, match="need clock_start"):
        read_design_file(path, ["conc"])
