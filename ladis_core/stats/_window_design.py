"""Which rows the window test compares, with which weights, and which pairs it swaps.

Rows are grouped by predicted class (one group when no classes are given). Within class
``c`` there are ``n_c`` reference and ``m_c`` window rows. The statistic compares the
window's mean embedding with the reference's, reweighted to the window's class mix:

    delta = sum_c (m_c / m) (mean_{window, c} phi - mean_{reference, c} phi)

i.e. weight ``1/m`` on every window row and ``-(m_c/m)/n_c`` on every reference row of
class ``c``, so a benign change of class mix is no evidence. Reference rows of classes the
window does not hold weigh nothing (left out); window rows of a class the reference lacks
cannot be compared given their class (left out, with a warning).

Permutations: in each class, ``min(m_c, n_c // 2)`` window rows are paired at random with
as many reference rows of that class, and a permutation swaps the members of a random
subset of pairs. Under H0 (given its class, a window row is distributed like a reference
row) swapping two rows of one class leaves the joint law unchanged, so the swaps form a
group that keeps H0 and the test is exact given the classes; unpaired rows stay where they
are. Swapping a pair moves ``(beta - alpha_c) (phi(ref) - phi(win))`` into ``delta``, so
all B permutations are one product of random bits with the pairs' differences.

At least half of each class's reference rows are never paired: they never move, so they
can define things every permutation shares -- feature scales, landmarks, and the natural
neighbours that per-input scores are measured against (the *fit* rows). The paired
reference rows are the *calibration* rows: exchangeable with natural window rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Design:
    """Rows, weights and pairs of one window test.

    ``reference_rows`` / ``window_rows``: indices (into the distinct rows of each side) of
    the rows compared; the pooled order is reference rows, then window rows.
    ``weights`` (pooled,) float64; ``pair_reference`` / ``pair_window`` (P,) pooled
    positions of each pair; ``pair_coefficient`` (P,) ``beta - alpha_c``.
    ``class_codes`` (pooled,) int64 class code of each pooled row (0 without classes).
    ``fit_rows``: pooled positions of the reference rows that are never paired.
    """

    reference_rows: np.ndarray
    window_rows: np.ndarray
    weights: np.ndarray
    pair_reference: np.ndarray
    pair_window: np.ndarray
    pair_coefficient: np.ndarray
    class_codes: np.ndarray
    fit_rows: np.ndarray
    dropped_window_rows: int
    warnings: tuple[str, ...]

    @property
    def n_pooled(self) -> int:
        return len(self.reference_rows) + len(self.window_rows)

    @property
    def n_pairs(self) -> int:
        return len(self.pair_reference)


#: warn when more than this share of the window rows cannot be permuted
FIXED_WARNING_SHARE = 0.1


def make_design(
    reference_codes: np.ndarray,
    window_codes: np.ndarray,
    rng: np.random.Generator,
    class_name=None,
) -> Design:
    """The design for class codes (int64, one per distinct row; all zero without classes).

    ``class_name(code)`` names a class in warnings."""
    name = class_name or str
    warnings: list[str] = []
    present = np.unique(window_codes)
    ref_by_class = {int(c): np.flatnonzero(reference_codes == c) for c in present}
    win_by_class = {int(c): np.flatnonzero(window_codes == c) for c in present}
    missing = [c for c in ref_by_class if len(ref_by_class[c]) == 0]
    dropped = sum(len(win_by_class[c]) for c in missing)
    if missing:
        warnings.append(
            f"{dropped} window row(s) of class(es) {', '.join(repr(name(c)) for c in missing)} "
            "were left out: the reference has no row of that class to compare them with"
        )
    kept = [int(c) for c in present if int(c) not in missing]
    window_rows = np.concatenate([win_by_class[c] for c in kept] or [np.zeros(0, np.int64)])
    reference_rows = np.concatenate([ref_by_class[c] for c in kept] or [np.zeros(0, np.int64)])
    m = len(window_rows)
    n_ref = len(reference_rows)
    weights = np.empty(n_ref + m, dtype=np.float64)
    codes = np.empty(n_ref + m, dtype=np.int64)
    pair_ref, pair_win, pair_coef, fit = [], [], [], []
    ref_at, win_at = 0, n_ref
    short = []
    for c in kept:
        refs, wins = ref_by_class[c], win_by_class[c]
        n_c, m_c = len(refs), len(wins)
        alpha_c = -(m_c / m) / n_c
        weights[ref_at : ref_at + n_c], weights[win_at : win_at + m_c] = alpha_c, 1.0 / m
        codes[ref_at : ref_at + n_c], codes[win_at : win_at + m_c] = c, c
        k = min(m_c, n_c // 2)
        shuffled = ref_at + rng.permutation(n_c)
        pair_ref.append(shuffled[:k])
        fit.append(shuffled[k:])
        pair_win.append(win_at + rng.permutation(m_c)[:k])
        pair_coef.append(np.full(k, 1.0 / m - alpha_c))
        if m_c > k:
            short.append((c, m_c, n_c))
        ref_at, win_at = ref_at + n_c, win_at + m_c
    fixed = sum(m_c - n_c // 2 for _, m_c, n_c in short)
    if fixed > FIXED_WARNING_SHARE * m:
        warnings.append(
            f"{fixed} window row(s) are never permuted because their class has fewer than "
            "twice as many reference rows as window rows ("
            + ", ".join(f"{name(c)!r}: {m_c} window vs {n_c} reference" for c, m_c, n_c in short)
            + "); the test stays exact but loses power: capture more reference data"
        )
    empty = np.zeros(0, dtype=np.int64)
    return Design(
        reference_rows=reference_rows,
        window_rows=window_rows,
        weights=weights,
        pair_reference=np.concatenate(pair_ref or [empty]),
        pair_window=np.concatenate(pair_win or [empty]),
        pair_coefficient=np.concatenate(pair_coef or [np.zeros(0)]),
        class_codes=codes,
        fit_rows=np.sort(np.concatenate(fit or [empty])),
        dropped_window_rows=int(dropped),
        warnings=tuple(warnings),
    )


def random_bits(rng: np.random.Generator, n_permutations: int, n_pairs: int) -> np.ndarray:
    """(B + 1, P) float32 in {0, 1}: row 0 all zero (the observed labelling), then B
    uniform random subsets of pairs to swap (random bytes: far cheaper than sorting keys)."""
    n_bits = n_permutations * n_pairs
    raw = np.frombuffer(rng.bytes((n_bits + 7) // 8), dtype=np.uint8)
    bits = np.zeros((n_permutations + 1, n_pairs), dtype=np.float32)
    bits[1:] = np.unpackbits(raw)[:n_bits].reshape(n_permutations, n_pairs)
    return bits
