"""The FO/FOCE FIM kernel's structure-aware paths equal the generic dense path on every library model.

``kernels.normal_fim._fo_rows`` treats a random effect's variance as a rank-one ∂V/∂ω (L_k L_kᵀ, no η-ε
interaction), the residual variances as diagonal ∂V/∂σ², and skips the fixed effects' ∂V/∂θ of the reduced
FIM (zero); covariances in Ω and the interaction (FOI/FOCEI) stay dense.  Here every library model's parameter
layout (fixed effects, random effects plus one covariance between its first two η's, residual terms of every
output, proportional, additive, combined and combined1) gets random predictions and derivatives; V and every
∂V are built densely in numpy from the linearisation's formulas and handed to the generic kernel
(``normal_fim_kernel``: all derivatives dense).  Agreement: 1e-12 relative, FO and FOI, full and reduced.  The
numpy contraction of a single linearisation (``fim.structured.StructuredFIM.dense``, what ``evaluate_fim`` uses for
one subject) is held to the same on the same inputs.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import pkdesign as pk
from pkdesign.fim.params import population_parameters
from pkdesign.fim.structured import StructuredFIM
from pkdesign.kernels.normal_fim import fo_fim_kernel, normal_fim_kernel

from .conftest import MODELS

LIBRARY = sorted(p.stem for p in MODELS.glob("*.toml"))


def _layout(name):
    spec = pk.load_model(MODELS / f"{name}.toml")
    pp = population_parameters(spec)
    om = [tuple(x) for x in pp.omega_free]
    omega = np.array(pp.omega, dtype=float)
    if pp.n_eta >= 2:  # a covariance between the first two η's (dense ∂V/∂ω_01)
        omega[0, 1] = omega[1, 0] = 0.3 * np.sqrt(omega[0, 0] * omega[1, 1])
        om.append((0, 1))
    om = np.array(om, dtype=np.int64).reshape(-1, 2)
    return pp, omega, om[:, 0].copy(), om[:, 1].copy(), pp.residual.kernel_arrays(), len(spec.output_names)


def _dense(f, fth, L, Lth, omega, om_i, om_j, resid, idx, full, interaction):
    """V (n, n) and ∂V (p, n, n) of the FO/FOI linearisation, written out densely."""
    err_out, err_prop, err_var, err_free, err_ab = resid
    n, pt = f.size, fth.shape[1]
    LO = L @ omega
    V = LO @ L.T
    Sd = np.diag(V).copy()
    dVs = [np.zeros((n, n)) for _ in range(pt)] if not full else []
    for m in range(pt if full else 0):
        A = Lth[:, :, m] @ omega @ L.T
        D = A + A.T
        for t in range(err_out.size):
            if err_prop[t]:
                sel = idx == err_out[t]
                D[sel, sel] += 2 * (err_var[t] * f[sel] + err_ab[t]) * fth[sel, m]
                if interaction:
                    D[sel, sel] += 2 * err_var[t] * np.diag(A)[sel]
        dVs.append(D)
    for t in range(err_out.size):
        sel = idx == err_out[t]
        if err_prop[t]:
            V[sel, sel] += err_var[t] * f[sel] ** 2 + 2 * err_ab[t] * f[sel] + (err_var[t] * Sd[sel] if interaction else 0)
        else:
            V[sel, sel] += err_var[t]
    for a, c in zip(om_i, om_j):
        D = np.outer(L[:, a], L[:, c])
        if a != c:
            D = D + D.T
        if interaction:
            for t in range(err_out.size):
                if err_prop[t]:
                    sel = idx == err_out[t]
                    D[sel, sel] += err_var[t] * L[sel, a] * L[sel, c] * (1.0 if a == c else 2.0)
        dVs.append(D)
    for t in range(err_out.size):
        if not err_free[t]:
            continue
        sel = idx == err_out[t]
        D = np.zeros((n, n))
        if err_prop[t]:
            D[sel, sel] = f[sel] ** 2 + (Sd[sel] if interaction else 0)
        else:
            D[sel, sel] = 1.0
        if err_ab[t] != 0:
            D[sel, sel] += err_ab[t] / err_var[t] * f[sel]
        dVs.append(D)
    return V, np.array(dVs)


@pytest.mark.parametrize("name", LIBRARY)
def test_structure_aware_fo_kernel_equals_the_generic_path(name):
    pp, omega, om_i, om_j, resid, n_out = _layout(name)
    pt, E = pp.p_theta, pp.n_eta
    if E == 0:
        pytest.skip("fixed effects only: no linearisation")
    rng = np.random.default_rng(len(name))
    B, n = 3, 7
    idx = np.sort(rng.integers(0, n_out, n)).astype(np.int64)
    idx[: n_out] = np.arange(n_out)  # every output sampled
    idx.sort()
    f = rng.uniform(0.5, 3.0, (B, n))
    fth = rng.normal(size=(B, n, pt))
    L = rng.normal(size=(B, n, E))
    Lth = rng.normal(size=(B, n, E, pt))
    for full in (False, True):
        for interaction in (False, True):
            p = pt + om_i.size + int(resid[3].sum())
            out = np.zeros((B, p, p))
            fo_fim_kernel(fth, f, fth, L, Lth, omega, om_i, om_j, *resid, idx, full, interaction, out)
            ref = np.zeros_like(out)
            for b in range(B):
                V, dV = _dense(f[b], fth[b], L[b], Lth[b], omega, om_i, om_j, resid, idx, full, interaction)
                normal_fim_kernel(fth[b:b + 1].copy(), V[None].copy(), dV[None].copy(), ref[b:b + 1])
            scale = np.abs(ref).max()
            assert np.abs(out - ref).max() <= 1e-12 * scale, (full, interaction)
            # the numpy path of a single linearisation (StructuredFIM.dense: evaluate_fim's FO/FOI), same layout
            shim = SimpleNamespace(omega=omega, p_theta=pt, omega_free=list(zip(om_i, om_j)), residual=pp.residual,
                                   p=p)
            for b in range(B):
                dense = StructuredFIM(shim, full=full, interaction=interaction).dense(
                    idx, fth[b], f[b], fth[b], L[b], Lth[b] if full else None)
                assert np.abs(dense - out[b]).max() <= 1e-12 * scale, (full, interaction, b)


def test_large_batches_split_across_threads_equal_one_row_at_a_time():
    """Batches of >= PARALLEL_MIN_ROWS rows run as row ranges on the thread pool: every row's FIM is the one the row
    gets alone, bit for bit (FO full with a covariance in Ω, the normal-model kernel with dense ∂V)."""
    from pkdesign.kernels import normal_fim

    pp, omega, om_i, om_j, resid, n_out = _layout("two_comp_oral")
    pt, E = pp.p_theta, pp.n_eta
    rng = np.random.default_rng(3)
    B, n = normal_fim.PARALLEL_MIN_ROWS + 13, 6
    idx = np.zeros(n, dtype=np.int64)
    f, fth = rng.uniform(0.5, 3.0, (B, n)), rng.normal(size=(B, n, pt))
    L, Lth = rng.normal(size=(B, n, E)), rng.normal(size=(B, n, E, pt))
    p = pt + om_i.size + int(resid[3].sum())
    out, one = np.zeros((B, p, p)), np.zeros((1, p, p))
    fo_fim_kernel(fth, f, fth, L, Lth, omega, om_i, om_j, *resid, idx, True, False, out)
    for b in range(B):
        s = slice(b, b + 1)
        fo_fim_kernel(fth[s], f[s], fth[s], L[s], Lth[s], omega, om_i, om_j, *resid, idx, True, False, one)
        assert np.array_equal(out[b], one[0]), b
    q = 3
    dmu = rng.normal(size=(B, n, q))
    A = rng.normal(size=(B, n, n))
    V = A @ A.transpose(0, 2, 1) + n * np.eye(n)
    dV = rng.normal(size=(B, 4, n, n))
    dV = dV + dV.transpose(0, 1, 3, 2)
    out, one = np.zeros((B, 4, 4)), np.zeros((1, 4, 4))
    normal_fim_kernel(dmu, V.copy(), dV, out)
    assert np.all(np.isfinite(out))
    for b in range(B):
        normal_fim_kernel(dmu[b:b + 1].copy(), V[b:b + 1].copy(), dV[b:b + 1].copy(), one)
        assert np.array_equal(out[b], one[0]), b


@pytest.mark.parametrize("K", ["one", "per row"])
def test_compiled_chain_rule_equals_numpy_bit_for_bit(K):
    """Batches of >= CHAIN_KERNEL_ROWS rows take the compiled chain rule; smaller ones numpy: the numbers are
    the same bit for bit (a search's batch and a single design agree exactly), for any ψ subsets."""
    from pkdesign.fim import predict

    rng = np.random.default_rng(7)
    B, n, P = predict.CHAIN_KERNEL_ROWS + 6, 5, 6
    free, ep = np.array([0, 2, 3, 5]), np.array([1, 2, 5])  # a random parameter without θ, θ's without η
    d1, d2 = rng.normal(size=(B, n, P)), rng.normal(size=(B, n, P, P))
    rows = 1 if K == "one" else B
    a, b, c, e = (rng.normal(size=(rows, m)) for m in (P, 3, 3, 3))
    for full in (False, True):
        got = predict.chain_rule(d1, d2 if full else None, a, b, c, e, free, ep)
        for lo in range(0, B, 7):  # numpy, in small batches
            sl = slice(lo, lo + 7)
            pick = (lambda x: x) if rows == 1 else (lambda x: x[sl])
            ref = predict.chain_rule(d1[sl], d2[sl] if full else None, pick(a), pick(b), pick(c), pick(e), free, ep)
            for g, r in zip(got[:3], ref[:3]):
                if r is None:
                    assert g is None
                else:
                    np.testing.assert_array_equal(g[sl], r)


@pytest.mark.parametrize("E", [1, 3])
def test_compiled_mean_derivative_equals_numpy_bit_for_bit(E):
    """``linearized.mean_derivative`` (FOCE/FOCEI: ∂f/∂θ − Σ_e ∂²f/∂η_e∂θ η*_e) runs compiled across threads from
    MEAN_KERNEL_ROWS linearisations on: the numbers of its numpy form (below the threshold), bit for bit."""
    from pkdesign.fim.linearized import MEAN_KERNEL_ROWS, mean_derivative

    rng = np.random.default_rng(E)
    B, n, pt = 3 * MEAN_KERNEL_ROWS + 5, 7, 4
    P = SimpleNamespace(fth=rng.normal(size=(B, n, pt)), Lth=rng.normal(size=(B, n, E, pt)))
    eta = rng.normal(size=(B, E))
    whole = mean_derivative(P, eta)
    for lo in range(0, B, MEAN_KERNEL_ROWS - 1):  # numpy: slices below the threshold
        hi = min(lo + MEAN_KERNEL_ROWS - 1, B)
        part = SimpleNamespace(fth=P.fth[lo:hi], Lth=P.Lth[lo:hi])
        np.testing.assert_array_equal(whole[lo:hi], mean_derivative(part, eta[lo:hi]))
