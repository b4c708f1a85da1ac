"""Per-person inference on photos whose identity is hidden.

Every person contributes exactly seven photos taken in one sitting: five with the mask worn, one worn incorrectly
and one without a mask. The sitting (background, clothes, camera, light) is shared by the seven photos and differs
between people, so a cheap picture of the regions a mask never covers recovers who is who:

- `image_statistics`: per-photo features of a sitting: a coarse grid of cell colours outside the mask area,
  normalised within the photo for exposure, then standardised over the set.
- `standardize`: z-scored columns, rows scaled to unit mean square norm: how any block of features (these, or a
  network's embeddings) is put on one scale before blocks are joined.
- `group_photos`: constrained agglomerative clustering of those features into groups of at most seven photos,
  over a k-nearest-neighbour candidate graph (no N x N matrix).
- `grouping_quality`, `choose_threshold`, `choose_grouping`: how well groups match known people; the merge
  threshold (and linkage) that recovers the most people whole. Only ever run where identity is known (out-of-fold
  training photos).
- `apply_person_mode`: decisions per group: gender and age pooled over the group, and for a complete group of
  seven the one mask assignment with exactly one incorrect and one not-worn photo.

Pure numpy; no file access.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from maskcls.layout import NUM_CLASSES, TASK_SIZES, encode, joint_probabilities, task_marginals

PHOTOS_PER_PERSON = 7  # five worn, one incorrect, one not worn
PERSON_MODES = ("none", "pool", "pool+assign")
LINKAGES = ("average", "complete", "single")

# The photo is pooled to a GRID of cell means; the cells of MASK_BOX (fractions of the height and width), where the
# mask, the chin and the mouth change from photo to photo, are left out.
GRID = (16, 12)
MASK_BOX = ((5 / 16, 11 / 16), (3 / 12, 9 / 12))
QUALITY_KEYS = ("people_whole", "people_together", "purity", "mean_group_size", "full_groups")


# --- features of a sitting ------------------------------------------------------------------------------------


def _cells(height: int, width: int, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Start rows and start columns of the pooling cells (a grid coarser than the photo)."""
    gh, gw = min(grid[0], height), min(grid[1], width)
    return (
        np.round(np.linspace(0, height, gh + 1)).astype(np.int64)[:-1],
        np.round(np.linspace(0, width, gw + 1)).astype(np.int64)[:-1],
    )


def kept_cells(height: int, width: int, grid: tuple[int, int] = GRID, mask_box=MASK_BOX) -> np.ndarray:
    """(gh, gw) bool: the cells `image_statistics` keeps (every cell outside `mask_box`)."""
    rows, cols = _cells(height, width, grid)
    gh, gw = len(rows), len(cols)
    keep = np.ones((gh, gw), bool)
    (r0, r1), (c0, c1) = mask_box
    keep[int(np.floor(r0 * gh)) : int(np.ceil(r1 * gh)), int(np.floor(c0 * gw)) : int(np.ceil(c1 * gw))] = False
    if not keep.any():
        raise ValueError(f"mask_box {mask_box} leaves no cell of the {gh}x{gw} grid")
    return keep


def standardize(features: np.ndarray) -> np.ndarray:
    """(N, D) -> float32 (N, D): every column z-scored over the N rows (a constant column becomes 0), then every row
    scaled by 1/sqrt(D), so that rows have a mean square norm of 1 whatever D is: blocks of features standardised
    this way weigh alike when they are concatenated."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    if len(x) == 0 or x.shape[1] == 0:
        return x.astype(np.float32)
    std = x.std(0)
    ok = std > 1e-9
    x = np.where(ok, (x - x.mean(0)) / np.where(ok, std, 1.0), 0.0)
    return (x / np.sqrt(x.shape[1])).astype(np.float32)


_standardize = standardize  # image_statistics' argument `standardize` hides the function


def image_statistics(
    images: np.ndarray,
    chunk_size: int = 256,
    standardize: bool = True,
    grid: tuple[int, int] = GRID,
    mask_box=MASK_BOX,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Features of the sitting each photo was taken in: (N, H, W, 3) uint8 RGB -> (N, D) float32.

    Each photo is pooled to a `grid` of cell means (16 x 12 by default: 8 x 8 pixel cells at 128 x 96); the
    cells of `mask_box` (the lower middle of the face, where the mask goes) are dropped, leaving the background,
    hair, the top of the face and the clothes (D = 3 * 156 by default). Each channel is then standardised within
    the photo over the kept cells (minus its mean, over its std): that removes the photo's exposure and white
    balance, which change from shot to shot within one sitting, and keeps the layout and the relative colours,
    which do not. (Absolute colour statistics of the border strips and clothes, and colour histograms, proved far
    weaker: exposure moves them more within a sitting than the background differs between sittings.)

    With `standardize`, every column is then z-scored over the N photos given (a constant column becomes 0) and
    the whole row scaled by 1/sqrt(D). Standardising over the set makes a merge threshold chosen on one set
    (out-of-fold training photos) carry over to another (eval) of the same kind.

    `images` may be a memory-mapped array: it is read `chunk_size` photos at a time, so memory stays at one chunk
    in float32 plus the (N, D) result. `rows`: featurise only `images[rows]`, in that order (read chunk by chunk
    too), e.g. the out-of-fold rows of a cache. Identical photos give identical rows. Cost: one pass over the pixels.
    """
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    take = None if rows is None else np.asarray(rows, dtype=np.int64)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    n, height, width, _ = images.shape
    if take is not None:
        if take.ndim != 1 or (len(take) and (take.min() < 0 or take.max() >= n)):
            raise ValueError(f"rows must be a 1-d array of indices in 0..{n - 1}")
        n = len(take)
    cell_rows, cols = _cells(height, width, grid)
    keep = kept_cells(height, width, grid, mask_box)
    area = np.outer(np.diff(np.append(cell_rows, height)), np.diff(np.append(cols, width))).astype(np.float32)
    out = np.empty((n, int(keep.sum()) * 3), np.float32)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        part = images[start:stop] if take is None else images[take[start:stop]]
        chunk = np.asarray(part, dtype=np.float32)
        pooled = np.add.reduceat(np.add.reduceat(chunk, cell_rows, axis=1), cols, axis=2) / area[None, :, :, None]
        kept = pooled[:, keep]  # (n, cells, 3)
        kept = (kept - kept.mean(1, keepdims=True)) / (kept.std(1, keepdims=True) + 1.0)  # +1: a flat photo
        out[start : start + len(chunk)] = kept.reshape(len(chunk), -1)
    if not standardize or n == 0:
        return out
    return _standardize(out)


# --- grouping ---------------------------------------------------------------------------------------------------


def _prepare(features: np.ndarray, normalize: bool) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features hold NaN or infinite values")
    if normalize:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norm > 0, norm, 1.0)
    return x


def _neighbours(x: np.ndarray, k: int, block: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric k-nearest-neighbour candidate edges (i < j) of the rows of x, blockwise: O(N^2 D) time, O(block N)
    memory. Ties at the k-th neighbour go to the lower index. The search runs in float32 (twice as fast; it only
    proposes candidates, every linkage is then computed in float64)."""
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x = x.astype(np.float32)
    sq = (x * x).sum(1)
    heads, tails = [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not one's own neighbour
        # The k-th smallest distance of each row; every column at or below it is a neighbour. A row with ties at
        # the k-th place has more than k such columns: it keeps the k first by (distance, index).
        kth = np.take_along_axis(d2, np.argpartition(d2, k - 1, axis=1)[:, k - 1 : k], axis=1)
        close = d2 <= kth
        rows, cols = np.nonzero(close)
        counts = close.sum(1)
        if (counts > k).any():
            keep = np.ones(len(rows), bool)
            offsets = np.concatenate([[0], np.cumsum(counts)])
            for r in np.flatnonzero(counts > k):
                span = slice(offsets[r], offsets[r + 1])
                order = np.argsort(d2[r, cols[span]], kind="stable")  # cols are in index order already
                keep[np.arange(span.start, span.stop)[order[k:]]] = False
            rows, cols = rows[keep], cols[keep]
        heads.append(rows + start)
        tails.append(cols)
    i, j = np.concatenate(heads), np.concatenate(tails)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    edges = np.unique(lo * n + hi)  # both directions merged: the graph does not depend on who found whom
    return edges // n, edges % n


def _graph(x: np.ndarray, k: int, blocks) -> tuple[np.ndarray, np.ndarray]:
    """`_neighbours` of the rows of x, within each block of `blocks` (N,) when given: no edge joins two blocks, so
    no group can."""
    if blocks is None:
        return _neighbours(x, k)
    blocks = np.asarray(blocks)
    if blocks.shape != (len(x),):
        raise ValueError(f"blocks must be ({len(x)},), got shape {blocks.shape}")
    heads, tails = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for b in np.unique(blocks):
        members = np.flatnonzero(blocks == b)
        i, j = _neighbours(x[members], k)
        heads.append(members[i])
        tails.append(members[j])
    i, j = np.concatenate(heads), np.concatenate(tails)
    order = np.lexsort((j, i))  # the order _neighbours gives: by first photo, then second
    return i[order], j[order]


def _linkages(x: np.ndarray, sq: np.ndarray, a: list[int], others: list[list[int]], linkage: str) -> np.ndarray:
    """Exact linkage distances (Euclidean) between cluster `a` and each of `others` (member lists), in one product;
    sq: squared row norms."""
    cols = [i for members in others for i in members]
    d2 = sq[a][:, None] + sq[cols][None, :] - 2.0 * (x[a] @ x[cols].T)
    d = np.sqrt(np.maximum(d2, 0.0))
    sizes = np.array([len(members) for members in others])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if linkage == "average":
        return np.add.reduceat(d.sum(0), starts) / (len(a) * sizes)
    if linkage == "complete":
        return np.maximum.reduceat(d.max(0), starts)
    return np.minimum.reduceat(d.min(0), starts)


def _agglomerate(
    x: np.ndarray, edges: tuple[np.ndarray, np.ndarray], threshold: float, max_size: int, linkage: str
) -> np.ndarray:
    """Greedy constrained agglomeration over candidate edges; see `group_photos`."""
    n = len(x)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}  # cluster id (its lowest photo index) -> photos
    owner = np.arange(n)  # photo -> cluster id
    adjacent: dict[int, set[int]] = {i: set() for i in range(n)}
    version = np.zeros(n, np.int64)
    sq = (x * x).sum(1)
    heap: list[tuple[float, int, int, int, int]] = []
    for i, j in zip(edges[0].tolist(), edges[1].tolist(), strict=True):
        adjacent[i].add(j)
        adjacent[j].add(i)
    if max_size < 2:
        return owner.copy()

    # Every cluster is a single photo at first: the edge lengths are the linkages, computed in one go.
    if len(edges[0]):
        d = np.concatenate(
            [
                np.einsum("ij,ij->i", x[edges[0][s : s + 4096]], x[edges[1][s : s + 4096]])
                for s in range(0, len(edges[0]), 4096)  # in blocks: the gathered rows of every edge do not fit
            ]
        )
        d = np.sqrt(np.maximum(sq[edges[0]] + sq[edges[1]] - 2.0 * d, 0.0))
        keep = d <= threshold
        pairs = zip(d[keep].tolist(), edges[0][keep].tolist(), edges[1][keep].tolist(), strict=True)
        heap.extend((dd, i, j, 0, 0) for dd, i, j in pairs)
        heapq.heapify(heap)
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if a not in members or b not in members or version[a] != va or version[b] != vb:
            continue  # one side has merged since this entry was pushed
        # Merge b into a (a < b, so the id stays the lowest photo index).
        members[a] = sorted(members[a] + members.pop(b))
        owner[members[a]] = a
        version[a] += 1
        neighbours = (adjacent[a] | adjacent.pop(b)) - {a, b}
        for c in neighbours:
            adjacent[c].discard(b)
            adjacent[c].add(a)
        adjacent[a] = neighbours
        # Sizes only grow: a pair too large to merge now never will be.
        admissible = [c for c in sorted(neighbours) if len(members[a]) + len(members[c]) <= max_size]
        if not admissible:
            continue
        distances = _linkages(x, sq, members[a], [members[c] for c in admissible], linkage)
        for d, c in zip(distances.tolist(), admissible, strict=True):
            if d <= threshold:
                lo, hi = min(a, c), max(a, c)
                heapq.heappush(heap, (d, lo, hi, int(version[lo]), int(version[hi])))
    # A cluster's id is its first photo, so ranking the ids numbers the groups in order of their first photo.
    return np.unique(owner, return_inverse=True)[1].astype(np.int64)


def group_photos(
    features: np.ndarray,
    threshold: float,
    max_size: int = PHOTOS_PER_PERSON,
    k: int = 20,
    linkage: str = "average",
    normalize: bool = True,
    blocks=None,
) -> np.ndarray:
    """Group photos of one sitting: (N, D) features -> (N,) int64 group ids 0..G-1, numbered in order of each
    group's first photo.

    Agglomerative clustering with two constraints: two clusters merge only if together they hold at most
    `max_size` photos and their `linkage` distance ("average", "complete" or "single") is at most `threshold`.
    Distances are Euclidean between the rows, L2-normalised first with `normalize` (then d = sqrt(2 - 2 cos), in
    [0, 2]). The closest admissible pair merges first; equal distances go to the pair with the lower photo indices,
    so the result is deterministic, and it does not depend on the order of the input rows except through exact
    ties.

    Candidates: only clusters joined by an edge of the symmetric k-nearest-neighbour graph of the photos are
    compared (a merged cluster inherits the edges of both sides); each comparison is exact, over the members
    (at most max_size^2 / 4 pairs). With k well above max_size - 1 this loses nothing in practice: photos of one
    sitting are each other's nearest neighbours. `blocks` (N,), when given: photos of different blocks never share
    a group (the graph is built within each block), e.g. photos featurised by different networks.

    Cost: the graph is computed in blocks of 512 rows, O(N^2 D) time and O(512 N) memory (about 100 MB of blocks
    at N = 13,000); the merges are O(N k log(N k)) heap operations, each comparison O(max_size^2 D), batched per
    merge. No N x N matrix is held. Measured on two CPU cores with D = 468 (`image_statistics`' default): about
    0.5 s at N = 2,000 and 7 s at N = 13,000 (5 s of it the neighbour search), peak memory about 250 MB.
    """
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if max_size < 1:
        raise ValueError(f"max_size must be at least 1, got {max_size}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    x = _prepare(features, normalize)
    if len(x) == 0:
        return np.zeros(0, np.int64)
    return _agglomerate(x, _graph(x, k, blocks), float(threshold), int(max_size), linkage)


def grouping_quality(groups, person_ids, full_size: int = PHOTOS_PER_PERSON) -> dict[str, float]:
    """How well `groups` (N,) match the true `person_ids` (N,) (any hashable labels).

    - `people_whole`: share of people whose photos are exactly one group: all of them, and nothing else;
    - `people_together`: share of people whose photos all sit in one group (others may be there too);
    - `purity`: share of groups whose photos all belong to one person;
    - `mean_group_size`: photos per group;
    - `full_groups`: share of photos in groups of exactly `full_size`;
    - `groups`, `people`: the counts.
    """
    groups = np.asarray(groups)
    person_ids = np.asarray(person_ids)
    if groups.shape != person_ids.shape or groups.ndim != 1:
        raise ValueError(f"groups {groups.shape} and person_ids {person_ids.shape} must be matching 1-d arrays")
    n = len(groups)
    if n == 0:
        return {key: 0.0 for key in QUALITY_KEYS} | {"groups": 0, "people": 0}
    _, g = np.unique(groups, return_inverse=True)
    _, p = np.unique(person_ids, return_inverse=True)
    n_groups, n_people = g.max() + 1, p.max() + 1
    group_size = np.bincount(g, minlength=n_groups)
    person_size = np.bincount(p, minlength=n_people)
    # Distinct (group, person) pairs: how many groups each person spans and how many people each group holds.
    pairs = np.unique(g.astype(np.int64) * n_people + p)
    pg, pp = pairs // n_people, pairs % n_people
    groups_per_person = np.bincount(pp, minlength=n_people)
    people_per_group = np.bincount(pg, minlength=n_groups)
    person_group = np.full(n_people, -1)
    person_group[pp] = pg  # meaningful only where the person spans one group
    together = groups_per_person == 1
    whole = together & (group_size[person_group] == person_size)
    return {
        "people_whole": float(whole.mean()),
        "people_together": float(together.mean()),
        "purity": float((people_per_group == 1).mean()),
        "mean_group_size": float(n / n_groups),
        "full_groups": float((group_size[g] == full_size).mean()),
        "groups": int(n_groups),
        "people": int(n_people),
    }


def choose_threshold(
    features: np.ndarray,
    person_ids,
    candidates: Sequence[float],
    max_size: int = PHOTOS_PER_PERSON,
    k: int = 20,
    linkage: str = "average",
    normalize: bool = True,
    blocks=None,
) -> tuple[float, list[dict]]:
    """The merge threshold among `candidates` that recovers the most people whole (`grouping_quality`'s
    `people_whole`); ties go to the smaller threshold. Returns (best, table): one row per candidate, in ascending
    threshold order, with the threshold and every `grouping_quality` key.

    Run it where identity is known (out-of-fold training photos, featurised like the target set), never on the
    photos the threshold is then used on. The neighbour graph is built once for all candidates. `blocks`: as in
    `group_photos`.
    """
    candidates, x = _candidates_and_rows(features, person_ids, candidates, [linkage], normalize)
    table = _threshold_table(x, _graph(x, k, blocks), person_ids, candidates, max_size, linkage)
    best = max(table, key=lambda row: (row["people_whole"], -row["threshold"]))
    return best["threshold"], table


def _candidates_and_rows(features, person_ids, candidates, linkages, normalize) -> tuple[list[float], np.ndarray]:
    candidates = sorted(float(c) for c in candidates)
    if not candidates:
        raise ValueError("no candidate thresholds")
    for linkage in linkages:
        if linkage not in LINKAGES:
            raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    x = _prepare(features, normalize)
    if len(x) != len(person_ids):
        raise ValueError(f"{len(x)} feature rows but {len(person_ids)} person ids")
    return candidates, x


def _threshold_table(x, edges, person_ids, candidates, max_size, linkage) -> list[dict]:
    """One row per candidate threshold: the threshold and every `grouping_quality` key of the grouping it makes."""
    table = []
    for t in candidates:
        groups = _agglomerate(x, edges, t, int(max_size), linkage) if len(x) else np.zeros(0, np.int64)
        table.append({"threshold": t, **grouping_quality(groups, person_ids, full_size=max_size)})
    return table


def choose_grouping(
    features: np.ndarray,
    person_ids,
    candidates: Sequence[float],
    linkages: Sequence[str] = LINKAGES,
    max_size: int = PHOTOS_PER_PERSON,
    k: int = 20,
    blocks=None,
) -> dict:
    """The linkage and threshold that recover the most people whole, chosen robustly: {"linkage", "threshold",
    "quality" (`grouping_quality` there), "table" ({linkage: its `choose_threshold` table})}.

    For each linkage, the candidates that tie at its best `people_whole` form a plateau; its threshold is the
    plateau's middle candidate (the lower of two middles), not its smallest: a threshold chosen on one set then
    sits away from both edges on a set of another size. The linkage with the best score wins, then the one with
    the wider plateau, then the first in `linkages`. Run it where identity is known, like `choose_threshold`. The
    neighbour graph is built once for every linkage and candidate.
    """
    if not linkages:
        raise ValueError("no linkages")
    candidates, x = _candidates_and_rows(features, person_ids, candidates, linkages, True)
    edges = _graph(x, k, blocks)
    best = None
    table = {}
    for rank, linkage in enumerate(linkages):
        rows = _threshold_table(x, edges, person_ids, candidates, max_size, linkage)
        table[linkage] = rows
        top = max(row["people_whole"] for row in rows)
        plateau = [row for row in rows if row["people_whole"] >= top - 1e-12]
        middle = plateau[(len(plateau) - 1) // 2]
        key = (top, len(plateau), -rank)
        if best is None or key > best[0]:
            best = (key, linkage, middle)
    _, linkage, row = best
    quality = {key: value for key, value in row.items() if key != "threshold"}
    return {"linkage": linkage, "threshold": row["threshold"], "quality": quality, "table": table}


# --- decisions per person ---------------------------------------------------------------------------------------

# Floor on a probability before its log: one photo can lower a pooled class by at most log(1e-6) / n, so a single
# overconfident photo cannot veto a class the rest of its group supports.
PROB_FLOOR = 1e-6


def _pooled(log_p: np.ndarray, inverse: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-group renormalised geometric mean of per-photo distributions: (N, C) logs -> (G, C) probabilities."""
    sums = np.zeros((len(counts), log_p.shape[1]))
    np.add.at(sums, inverse, log_p)
    mean = sums / counts[:, None]
    mean -= mean.max(1, keepdims=True)
    p = np.exp(mean)
    return p / p.sum(1, keepdims=True)


def assign_masks(log_mask: np.ndarray) -> np.ndarray:
    """Mask labels of complete groups: (G, 7, 3) per-photo log mask probabilities -> (G, 7) labels with exactly one
    incorrect (1), one not worn (2) and the rest worn (0), the assignment of largest total log-probability.

    Exact: the total is sum(log worn) + [log incorrect - log worn](i) + [log none - log worn](j) over the
    (i, j), i != j, pairs: O(7^2) per group. Equal totals go to the lowest (i, j) in row-major order.
    """
    g, m, _ = log_mask.shape
    gain_incorrect = log_mask[:, :, 1] - log_mask[:, :, 0]
    gain_none = log_mask[:, :, 2] - log_mask[:, :, 0]
    total = gain_incorrect[:, :, None] + gain_none[:, None, :]
    total[:, np.arange(m), np.arange(m)] = -np.inf  # one photo cannot be both
    best = total.reshape(g, m * m).argmax(1)
    labels = np.zeros((g, m), np.int64)
    rows = np.arange(g)
    labels[rows, best // m] = 1
    labels[rows, best % m] = 2
    return labels


def apply_person_mode(
    probs18: np.ndarray,
    groups,
    mode: str,
    full_size: int = PHOTOS_PER_PERSON,
    assign_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Decisions that use the group of each photo: (N, 18) probabilities and (N,) group ids -> ((N, 18)
    probabilities, (N,) class decisions), with decision == argmax of the returned probabilities on every row.

    Modes:
    - `none`: the photos alone (rows renormalised, argmax).
    - `pool`: in a group of two or more photos, gender and age come from the group: the renormalised geometric
      mean of the members' gender (and age) marginals. The mask stays each photo's own marginal. A photo's
      returned probabilities are the product pooled gender x pooled age x own mask (`layout.joint_probabilities`),
      so any dependence between the tasks inside one photo's 18 probabilities is dropped for grouped photos.
    - `pool+assign`: `pool`, and in a group of exactly `full_size` photos the masks come from `assign_masks`
      (exactly one incorrect, one not worn, five worn, the most probable such assignment). The assigned mask
      replaces the photo's mask marginal by (1 - assign_weight) * marginal + assign_weight * one-hot: with the
      default 1.0 it is certain; any assign_weight > 0.5 keeps it the argmax (it then holds more than half of the
      mass) while leaving some of the photo's own mask evidence for later stages. Groups of another size keep
      per-photo masks.
    Single photos are left as they are in every mode: their 18 probabilities (renormalised) and argmax.

    Why pool in log space: the photos of a group are repeated looks at one person, so their evidence combines by
    multiplication (a product of likelihoods); a linear mean treats them as alternatives and lets the bulk of
    middling photos outvote the few that see the person clearly. Taking the mean of the logs (the product to the
    power 1/n) keeps the sharpness of a single photo, which matters because photos of one sitting share their
    errors and are far from independent. Each probability is floored at PROB_FLOOR before the log, so one
    overconfident photo cannot veto a class.
    """
    if mode not in PERSON_MODES:
        raise ValueError(f"mode must be one of {PERSON_MODES}, got {mode!r}")
    if not 0.5 < assign_weight <= 1.0:
        raise ValueError(f"assign_weight must be in (0.5, 1], got {assign_weight}")
    p = np.asarray(probs18, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != NUM_CLASSES:
        raise ValueError(f"probs18 must be (N, {NUM_CLASSES}), got shape {p.shape}")
    groups = np.asarray(groups)
    if groups.shape != (len(p),):
        raise ValueError(f"groups must be ({len(p)},), got shape {groups.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs18 must be finite and non-negative")
    total = p.sum(1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / NUM_CLASSES)
    if mode == "none" or len(p) == 0:
        return p, p.argmax(1).astype(np.int64)

    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    size = counts[inverse]
    marg = task_marginals(p)
    log = {t: np.log(np.maximum(marg[t], PROB_FLOOR)) for t in ("mask", "gender", "age")}
    gender = _pooled(log["gender"], inverse, counts)[inverse]
    age = _pooled(log["age"], inverse, counts)[inverse]
    mask = marg["mask"].copy()
    mask_label = mask.argmax(1)

    if mode == "pool+assign":
        full = np.flatnonzero(counts == full_size)
        if len(full):
            rows = np.flatnonzero(np.isin(inverse, full))
            # Rows of each full group in index order: sort by (group, index).
            rows = rows[np.lexsort((rows, inverse[rows]))].reshape(len(full), full_size)
            labels = assign_masks(log["mask"][rows])
            onehot = np.eye(TASK_SIZES["mask"])[labels]
            mask[rows] = (1.0 - assign_weight) * mask[rows] + assign_weight * onehot
            mask_label[rows] = labels

    out = joint_probabilities(mask, gender, age)
    decision = encode(mask_label, gender.argmax(1), age.argmax(1)).astype(np.int64)
    single = size == 1
    out[single] = p[single]
    decision[single] = p[single].argmax(1)
    return out, decision
