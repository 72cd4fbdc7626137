"""2-D t-SNE of layer representations, for the dashboard's layer explorer.

One joint embedding is computed for all groups (e.g. ``{"reference": R, "inference": X}``)
so their points share one coordinate system and can be drawn side by side. t-SNE
(van der Maaten & Hinton, JMLR 2008) is quadratic-ish in the number of points, so each
group is subsampled deterministically (``seed``) before embedding, and wide layers are
first reduced with PCA (the usual recipe; t-SNE on 512 raw dimensions is slower and no
better).

This is a visual aid only: detection decisions come from :mod:`ladis_core.stats`, never
from the embedding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ladis_core.errors import InputError, check
from ladis_core.progress import ProgressCallback, report

DEFAULT_MAX_POINTS = 1000
DEFAULT_PCA_DIMS = 50


@dataclass(frozen=True)
class Embedding2D:
    """A joint 2-D embedding of several groups of rows.

    All arrays have one entry per embedded point, shape (m,), except ``coords`` (m, 2).
    ``row`` is the index of the point in its group's input array, so callers can map a
    point back to its step, class or image.
    """

    coords: np.ndarray
    group: np.ndarray
    row: np.ndarray
    groups: tuple[str, ...]
    #: rows available per group before subsampling
    available: dict[str, int]
    seed: int
    perplexity: float
    pca_dims: int | None

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def of_group(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(coords (k, 2), row (k,))`` of the points of group ``name``."""
        mask = self.group == name
        return self.coords[mask], self.row[mask]


def subsample_rows(
    sizes: Mapping[str, int], *, max_points: int, seed: int
) -> dict[str, np.ndarray]:
    """Deterministic per-group row indices with at most ``max_points`` rows in all.

    Groups keep their share of the total, but each group keeps at least
    ``min(size, max_points // (2 * n_groups))`` rows so a small group is never drowned.
    Indices are sorted, shape (k_group,).
    """
    check(max_points >= 2, f"max_points={max_points} must be at least 2")
    total = sum(sizes.values())
    rng = np.random.default_rng(seed)
    if total <= max_points:
        return {name: np.arange(size, dtype=np.int64) for name, size in sizes.items()}
    # every group first gets its floor, then the rest is shared in proportion to what
    # each group has left, so the total never exceeds max_points
    floor = max_points // (2 * max(1, len(sizes)))
    base = {name: min(size, floor) for name, size in sizes.items()}
    left = {name: sizes[name] - base[name] for name in sizes}
    spare = max_points - sum(base.values())
    left_total = sum(left.values())
    out: dict[str, np.ndarray] = {}
    for name, size in sizes.items():
        extra = int(spare * left[name] // left_total) if left_total else 0
        want = min(size, base[name] + extra)
        out[name] = np.sort(rng.choice(size, size=want, replace=False)).astype(np.int64)
    return out


def tsne_2d(
    arrays_by_group: Mapping[str, np.ndarray],
    *,
    seed: int = 0,
    perplexity: float = 30.0,
    max_points: int = DEFAULT_MAX_POINTS,
    pca_dims: int | None = DEFAULT_PCA_DIMS,
    standardize: bool = True,
    progress: ProgressCallback | None = None,
) -> Embedding2D:
    """Embed the rows of every group in one 2-D t-SNE.

    Parameters
    ----------
    arrays_by_group:
        group name -> ndarray of shape (n_group, d) (or (n_group, ...), flattened); every
        group must have the same number of features.
    seed:
        drives the subsampling and sklearn's ``random_state``; the same inputs and seed
        give the same picture.
    perplexity:
        t-SNE perplexity; lowered automatically when there are few points (it must stay
        below the number of points).
    max_points:
        at most this many rows are embedded in all (subsampled per group, see
        :func:`subsample_rows`).
    pca_dims:
        reduce to this many principal components first when the layer is wider
        (``None`` to skip).
    standardize:
        scale each feature to zero mean and unit variance over the embedded rows first.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    check(len(arrays_by_group) > 0, "tsne_2d needs at least one group of rows")
    check(perplexity > 0, f"perplexity={perplexity} must be positive")
    flat: dict[str, np.ndarray] = {}
    for name, values in arrays_by_group.items():
        array = np.asarray(values, dtype=np.float32)
        check(array.ndim >= 1 and array.shape[0] > 0, f"group {name!r} has no rows")
        flat[name] = array.reshape(array.shape[0], -1)
    widths = {a.shape[1] for a in flat.values()}
    if len(widths) != 1:
        shapes = ", ".join(f"{k}: {v.shape[1]}" for k, v in flat.items())
        raise InputError(
            f"all groups need the same number of features to share one t-SNE ({shapes})"
        )

    report(progress, "t-SNE", 0, 3, "subsampling")
    picks = subsample_rows({k: len(v) for k, v in flat.items()}, max_points=max_points, seed=seed)
    names = tuple(flat)
    data = np.concatenate([flat[k][picks[k]] for k in names]).astype(np.float64)
    group = np.concatenate([np.full(len(picks[k]), k, dtype=object) for k in names])
    row = np.concatenate([picks[k] for k in names])
    m = data.shape[0]
    check(m >= 3, f"t-SNE needs at least 3 points, got {m}")

    if standardize:
        std = data.std(axis=0)
        # constant features (dead ReLUs are common) would divide by zero: leave them at 0
        data = (data - data.mean(axis=0)) / np.where(std > 0, std, 1.0)
    report(progress, "t-SNE", 1, 3, f"reducing {data.shape[1]} features")
    if pca_dims is not None and data.shape[1] > pca_dims and m > pca_dims:
        data = PCA(n_components=pca_dims, random_state=seed).fit_transform(data)

    report(progress, "t-SNE", 2, 3, f"embedding {m} points")
    # perplexity must be < m; a third of the points keeps neighbourhoods meaningful
    used_perplexity = float(min(perplexity, max(1.0, (m - 1) / 3)))
    coords = TSNE(
        n_components=2,
        perplexity=used_perplexity,
        init="pca",
        learning_rate="auto",
        random_state=seed,
        # one thread: on a shared small machine a thread pool only adds contention
        n_jobs=1,
    ).fit_transform(data)
    report(progress, "t-SNE", 3, 3, "done")
    return Embedding2D(
        coords=coords.astype(np.float32),
        group=group,
        row=row,
        groups=names,
        available={k: int(len(v)) for k, v in flat.items()},
        seed=int(seed),
        perplexity=used_perplexity,
        pca_dims=pca_dims,
    )
