"""Does the FIM approximation change the optimal design?  warfarin_prop (proportional error), 32 subjects,
8 samples in [0.1, 120] h, full FIM: the D-optimal schedule under FO and under FOCE (1,000 linearisation
points, the same draws for every candidate: a smooth criterion), each judged by the exact FIM (Monte Carlo,
4,000 simulated subjects, the same seed for both designs so their difference is sharper than each value).

Run:  python examples/foce_vs_fo_design.py
"""

import time

import pkdesign as pk


def main():
    model = pk.compile_model(pk.load_model("warfarin_prop"))
    design = model.spec.default_design
    results = {}
    for approx, draws in (("fo", None), ("foce", 1000)):
        t0 = time.perf_counter()
        r = pk.optimize_design(model, design, approximation=approx, fim="full", draws=draws, starts=1, seed=1)
        results[approx] = r
        times = ", ".join(f"{t:.3g}" for t in r.design.groups[0].times["conc"])
        print(f"{approx.upper():>4}-optimal ({time.perf_counter() - t0:5.1f} s, {r.status.value}): "
              f"criterion {r.criterion_value:.4f}; times {times}")
    print()
    print("design        ln det FO   ln det FOCE(1000)   ln det exact-MC(4000) +- SE")
    for name, d in (("reference", design), ("FO-optimal", results["fo"].design),
                    ("FOCE-optimal", results["foce"].design)):
        fo = pk.evaluate_fim(model, d, "fo", "full").logdet
        foce = pk.evaluate_fim(model, d, "foce", "full", draws=1000, seed=1).logdet
        ex = pk.evaluate_fim(model, d, "exact-mc", "full", draws=4000, seed=7, check=False)
        print(f"{name:<12}  {fo:9.4f}   {foce:17.4f}   {ex.logdet:18.4f} +- {ex.info['logdet_mc_se']:.3f}")


if __name__ == "__main__":
    main()
