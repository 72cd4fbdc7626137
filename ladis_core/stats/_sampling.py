"""Which rows each repetition of the detection-rate protocol tests.

Every repetition draws ``n`` inference rows at random without replacement (in random
order) and ``n`` reference rows. With class-matched sampling, reference row ``i`` is drawn
from the reference rows whose class equals the predicted class of inference row ``i``, so
the pooled pairs ``(x_i, y_i)`` share a class and the pair-swap test is exact given the
classes. When a class has fewer reference rows than the repetition needs, the missing rows
are drawn from the unused reference rows of other classes and a warning is recorded.
"""

from __future__ import annotations

import numpy as np

from ladis_core.errors import check
from ladis_core.stats._validation import ClassCodes


def check_enough_rows(n_samples: int, n_rows: int, name: str) -> None:
    check(
        n_rows >= n_samples,
        f"n_samples={n_samples} needs at least {n_samples} rows in {name}, but {name} has "
        f"{n_rows}; lower n_samples or provide more data",
    )


def draw_indices(
    rng: np.random.Generator,
    n_reference: int,
    n_inference: int,
    n_samples: int,
    n_repeats: int,
    classes: ClassCodes | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row indices of shape (n_repeats, n_samples) into reference and inference, and warnings."""
    inf_idx = np.stack(
        [rng.choice(n_inference, n_samples, replace=False) for _ in range(n_repeats)]
    )
    if classes is None:
        ref_idx = np.stack(
            [rng.choice(n_reference, n_samples, replace=False) for _ in range(n_repeats)]
        )
        return ref_idx, inf_idx, []
    ref_codes, inf_codes = classes.reference, classes.inference
    n_classes = int(max(ref_codes.max(initial=0), inf_codes.max(initial=0))) + 1
    ref_counts = np.bincount(ref_codes, minlength=n_classes)
    ref_starts = np.concatenate([[0], np.cumsum(ref_counts)[:-1]])
    ref_idx = np.empty_like(inf_idx)
    short_reps = np.zeros(n_classes, dtype=np.int64)  # repetitions where the class ran short
    short_need = np.zeros(n_classes, dtype=np.int64)  # most rows of the class a repetition needed
    for r in range(n_repeats):
        # reference rows grouped by class, random order within each class
        by_class = np.lexsort((rng.random(n_reference), ref_codes))
        wanted = inf_codes[inf_idx[r]]
        order = np.argsort(wanted, kind="stable")
        need = np.bincount(wanted, minlength=n_classes)
        group_start = np.concatenate([[0], np.cumsum(need)[:-1]])
        rank = np.empty(n_samples, dtype=np.int64)
        rank[order] = np.arange(n_samples) - np.repeat(group_start, need)
        matched = rank < ref_counts[wanted]
        ref_idx[r, matched] = by_class[ref_starts[wanted[matched]] + rank[matched]]
        if not matched.all():
            short = need > ref_counts
            short_reps += short
            short_need = np.maximum(short_need, np.where(short, need, 0))
            unused = np.setdiff1d(np.arange(n_reference), ref_idx[r, matched], assume_unique=True)
            ref_idx[r, ~matched] = rng.choice(unused, int((~matched).sum()), replace=False)
    return (
        ref_idx,
        inf_idx,
        _shortfall_warnings(classes, short_reps, short_need, ref_counts, n_repeats),
    )


def _shortfall_warnings(
    classes: ClassCodes,
    short_reps: np.ndarray,
    short_need: np.ndarray,
    ref_counts: np.ndarray,
    n_repeats: int,
) -> list[str]:
    return [
        f"class-matched sampling: predicted class {classes.name(c)!r} needed up to {short_need[c]} "
        f"reference rows in a repetition but the reference has {ref_counts[c]}; the missing "
        f"rows were drawn from other classes (unmatched pairs) in {short_reps[c]} of "
        f"{n_repeats} repetitions"
        for c in np.flatnonzero(short_reps)
    ]


def split_halves(rng: np.random.Generator, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of ``range(n_rows)`` (an odd row out is left unused)."""
    perm = rng.permutation(n_rows)
    half = n_rows // 2
    return np.sort(perm[:half]), np.sort(perm[half : 2 * half])
