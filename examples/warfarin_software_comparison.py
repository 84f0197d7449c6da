"""Warfarin FO design evaluation beside the published cross-software comparison, and the other
approximations on the same design.

Published: Nyberg J, Bazzoli C, Ogungbenro K, et al. (2015) Methods and software tools for design
evaluation in population pharmacokinetics-pharmacodynamics studies. Br J Clin Pharmacol 79:6-17
(proportional-error warfarin design, 32 subjects x 8 samples; RSE% from PFIM, PopED, PopDes,
POPT, PkStaMp agreeing to one decimal).  PopED's own values: tests/reference/warfarin_fo.json.

Run:  python examples/warfarin_software_comparison.py
"""

import json
from pathlib import Path

import numpy as np

import pkdesign as pk

ROOT = Path(__file__).resolve().parent.parent
REF = json.loads((ROOT / "tests" / "reference" / "warfarin_fo.json").read_text())


def main():
    spec = pk.load_model(ROOT / "models" / "warfarin_prop.toml")
    model = pk.compile_model(spec)
    design = spec.default_design
    case = REF["cases"][0]
    print("Warfarin, proportional error, 32 subjects x 8 samples: RSE% (variance scale)\n")
    for kind in ("reduced", "full"):
        r = pk.evaluate_fim(model, design, "fo", kind)
        pub = case.get("published_rse_percent_nyberg_2015", {}).get(kind)
        print(f"FO, {kind} FIM: ln det pkdesign {r.logdet:.6f}, PopED {case[kind]['lndet']:.6f}")
        print(f"{'parameter':>14} {'pkdesign':>10} {'PopED':>10} {'published':>10}")
        for k, n in enumerate(r.names):
            p = f"{pub[k]:.1f}" if pub else "-"
            print(f"{n:>14} {r.rse_percent[k]:>10.2f} {case[kind]['rse_percent'][k]:>10.2f} {p:>10}")
        print()
    print("Other approximations on the same design (full FIM; seed 0):")
    rows = {}
    for approx in ("fo", "foi", "foce", "focei", "mc", "exact-mc"):
        rows[approx] = pk.evaluate_fim(model, design, approx, "full", seed=0)
    names = rows["fo"].names
    print(f"{'parameter':>14} " + " ".join(f"{a:>9}" for a in rows))
    for k, n in enumerate(names):
        print(f"{n:>14} " + " ".join(f"{r.rse_percent[k]:>9.2f}" for r in rows.values()))
    print(f"{'ln det':>14} " + " ".join(f"{r.logdet:>9.3f}" for r in rows.values()))
    ex = rows["exact-mc"]
    print(f"\nexact-MC (the reference): ln det {ex.logdet:.3f} +/- {ex.info['logdet_mc_se']:.3f} (Monte-Carlo SE)")
    for approx, r in rows.items():
        if approx != "exact-mc":
            worst = np.max(np.abs(r.rse_percent / ex.rse_percent - 1))
            print(f"  {approx:>6}: ln det off by {r.logdet - ex.logdet:+.3f}; worst RSE% ratio off by {worst:.0%}")


if __name__ == "__main__":
    main()
