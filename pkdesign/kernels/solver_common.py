"""The model-independent pieces of the compiled ODE integrators: small dense LU factorisation, solve and inverse,
the inverted state block of an implicit method's iteration matrix, the weighted error norm and step-size control, a
stable sort of times, and the BDF method's difference-array rescaling and interpolation (:mod:`pkdesign.kernels.bdf`).

Plain Python (read, lint and test them here): :mod:`pkdesign.kernels.integrators` compiles them with the
integrators that call them, once per installation; a process that only uses Dormand–Prince never compiles the LU.
"""

import math

import numpy as np


def lu_factor(a, piv):
    """In-place LU factorisation with partial pivoting of the square matrix ``a``; False if singular."""
    n = a.shape[0]
    for k in range(n):
        p = k
        big = abs(a[k, k])
        for i in range(k + 1, n):
            if abs(a[i, k]) > big:
                big = abs(a[i, k])
                p = i
        piv[k] = p
        if big == 0.0 or not math.isfinite(big):
            return False
        if p != k:
            for j in range(n):
                tmp = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = tmp
        inv = 1.0 / a[k, k]
        for i in range(k + 1, n):
            a[i, k] *= inv
            m = a[i, k]
            if m != 0.0:
                for j in range(k + 1, n):
                    a[i, j] -= m * a[k, j]
    return True


def lu_solve(a, piv, b):
    """Solve with the factors of :func:`lu_factor`, ``b`` overwritten by the solution."""
    n = a.shape[0]
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(n):
        s = b[i]
        for j in range(i):
            s -= a[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= a[i, j] * b[j]
        b[i] = s / a[i, i]


def lu_inverse(a, piv, inv, col):
    """The inverse of the matrix whose factors (:func:`lu_factor`) are in ``a``, into ``inv`` (``col``: work of
    its size).  The state blocks are small (n_x × n_x): applying an explicit inverse to the 1 + P (+ NP2)
    blocks of every stage costs less than as many triangular solves with pivoting."""
    n = a.shape[0]
    for j in range(n):
        for i in range(n):
            col[i] = 0.0
        col[j] = 1.0
        lu_solve(a, piv, col)
        for i in range(n):
            inv[i, j] = col[i]


def invert_state_block(J, c, G, piv, Gi, tmp):
    """Gi = (I/c − J_x)⁻¹, the inverse of the state block of the iteration matrix (``c``: γh for this method, h/α
    for BDF), by an LU in G (with ``piv``, ``tmp`` work); False if singular."""
    nx = G.shape[0]
    for i in range(nx):
        for j in range(nx):
            G[i, j] = -J[i, j]
        G[i, i] += 1.0 / c
    if not lu_factor(G, piv):
        return False
    lu_inverse(G, piv, Gi, tmp)
    return True


def error_norm(e, scale, y, yn, rtol, atol):
    """RMS over components of scale·e_i / (atol + rtol·max(|y_i|, |yn_i|)): ≤ 1 accepts a step."""
    ny = y.shape[0]
    err = 0.0
    for i in range(ny):
        sc = atol + rtol * max(abs(y[i]), abs(yn[i]))
        err += (scale * e[i] / sc) ** 2
    return math.sqrt(err / ny)


def step_control(err, h, h_full, clipped, exponent):
    """(accepted, next step) for an error norm ``err`` of a step of size h (err ∝ h^(1/exponent)): accept when
    err <= 1 and grow by 0.9·err^-exponent within [0.2, 5]; else shrink by the same rule (at least 5x smaller on
    a non-finite error).  A step ``clipped`` to hit an event or sample never shrinks the next below h_full."""
    if not (err == err) or err > 1e300:
        return False, h * 0.2
    if err <= 1.0:
        h = h * (5.0 if err == 0.0 else min(5.0, max(0.2, 0.9 * err ** -exponent)))
        if clipped:  # a step shortened to hit t_end says nothing against the longer one
            h = max(h, h_full)
        return True, h
    return False, h * max(0.2, 0.9 * err ** -exponent)


def sort_index(a, n):
    """Indices that sort ``a[:n]`` (int64 (n,)), equal values in their given order: a bottom-up merge sort, with
    the sorted case (the usual one) checked first.  Numba's ``np.argsort`` costs ~2 s of compilation."""
    idx = np.arange(n)
    done = True
    for i in range(1, n):
        if a[i] < a[i - 1]:
            done = False
            break
    if done:
        return idx
    tmp = np.empty(n, dtype=np.int64)
    width = 1
    while width < n:
        lo = 0
        while lo < n - width:
            mid = lo + width
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if a[idx[j]] < a[idx[i]]:
                    tmp[k] = idx[j]
                    j += 1
                else:
                    tmp[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                tmp[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                tmp[k] = idx[j]
                j += 1
                k += 1
            for q in range(lo, hi):
                idx[q] = tmp[q]
            lo += 2 * width
        width *= 2
    return idx


def change_d(D, order, factor):
    """Rescale the difference array D (rows 0..order) from step h to factor·h (Shampine & Reichelt, eq. 2.4:
    D ← (R(factor) U)ᵀ D with R_ij = Π_{m<=i} (m - 1 - factor·j)/m and U = R(1))."""
    k = order + 1
    R = np.empty((k, k))
    U = np.empty((k, k))
    for j in range(k):
        R[0, j] = 1.0
        U[0, j] = 1.0
    for i in range(1, k):
        R[i, 0] = 0.0
        U[i, 0] = 0.0
        for j in range(1, k):
            R[i, j] = R[i - 1, j] * (i - 1 - factor * j) / i
            U[i, j] = U[i - 1, j] * (i - 1 - j) / i
    RU = np.zeros((k, k))  # R U (a loop: numba's matrix product costs 0.5 s of compilation for k <= 7)
    for i in range(k):
        for m in range(k):
            r = R[i, m]
            for j in range(k):
                RU[i, j] += r * U[m, j]
    ny = D.shape[1]
    new = np.zeros((k, ny))
    for a in range(k):
        for b in range(k):
            c = RU[b, a]
            if c != 0.0:
                for i in range(ny):
                    new[a, i] += c * D[b, i]
    for a in range(k):
        for i in range(ny):
            D[a, i] = new[a, i]


def extrapolate(D, order, s, y):
    """y = the history's interpolating polynomial at t + s·h (Newton backward form:
    Σ_j D[j] Π_{m<j} (s + m)/(m + 1))."""
    ny = y.shape[0]
    for i in range(ny):
        y[i] = D[0, i]
    c = 1.0
    for j in range(1, order + 1):
        c *= (s + j - 1) / j
        for i in range(ny):
            y[i] += c * D[j, i]
