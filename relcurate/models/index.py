"""Vector index over faiss for image embeddings, keyed by the embedding model's version.

- exact: ``IndexIDMap2(IndexFlatIP)`` -- inner product on L2-normalised vectors is cosine.
- approx: ``IndexIVFFlat`` (flat vectors, no compression loss), chosen by ``kind="auto"`` at
  ``APPROX_MIN_SIZE`` vectors and above. ``nprobe`` is tuned at build time on a sample of the
  indexed vectors (as "more like this item" queries, self excluded) to reach ``target_recall``
  recall@10 against exact search, and stored with the index. The quantizer is trained once at
  build; after many ``add``s of a shifted distribution, rebuild (and so re-tune).

Vectors of different embedding models are not comparable, so every index carries the
``model_version`` it was built from; ``load(..., expected_model_version=...)`` refuses a mismatch.
Ids are int64 (database item ids); each id appears at most once.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import faiss
import numpy as np

Kind = Literal["auto", "exact", "approx"]
Metric = Literal["ip", "l2"]

APPROX_MIN_SIZE = 100_000  # below this a flat scan is already a few ms per query
FORMAT_VERSION = 1
INDEX_FILE, IDS_FILE, META_FILE = "index.faiss", "ids.npy", "meta.json"


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def _as_matrix(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"expected vectors of shape (n, {dim or 'd'}), got {x.shape}")
    return x


def _as_ids(ids: Iterable[int] | np.ndarray, n: int) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if arr.shape[0] != n:
        raise ValueError(f"{n} vectors but {arr.shape[0]} ids")
    if np.unique(arr).shape[0] != n:
        raise ValueError("ids must be unique")
    if (arr == -1).any():
        raise ValueError("id -1 is reserved (faiss marks missing results with it)")
    return arr


def default_nlist(n: int) -> int:
    """~sqrt(n) inverted lists (power of two), at least ~40 training points per list."""
    nlist = 1 << max(0, int(round(np.log2(max(np.sqrt(n), 1.0)))))
    return int(max(1, min(nlist, n // 39)))


def brute_force_topk(queries: np.ndarray, vectors: np.ndarray, k: int, metric: Metric = "ip",
                     chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k with numpy (matmul + argpartition), chunked over the database.

    Returns (scores, row indices); for "l2" the scores are squared distances, ascending.
    """
    q = _as_matrix(queries)
    k = min(k, vectors.shape[0])
    best_s = np.full((q.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((q.shape[0], 0), dtype=np.int64)
    q_sq = (q * q).sum(1, keepdims=True) if metric == "l2" else None
    for start in range(0, vectors.shape[0], chunk):
        block = vectors[start:start + chunk]
        s = q @ block.T
        if metric == "l2":  # rank by -||q-x||^2 so "larger is better" holds in both metrics
            s = 2 * s - (block * block).sum(1)[None, :] - q_sq
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]  # top-k of this chunk, then merge
        best_s = np.concatenate([best_s, np.take_along_axis(s, part, 1)], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
    return (-best_s if metric == "l2" else best_s), best_i


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of `truth` present in the same row of `found`."""
    hits = sum(len(set(f.tolist()) & set(t.tolist()) - {-1}) for f, t in zip(found, truth))
    return hits / max(1, truth.size)


class VectorIndex:
    """faiss index with int64 ids, a model version, and save/load."""

    def __init__(self, index: faiss.Index, ids: np.ndarray, *, model_version: str,
                 kind: Literal["exact", "approx"], metric: Metric, nprobe: int | None = None) -> None:
        self._index = index
        self._ids = np.asarray(ids, dtype=np.int64)
        self.model_version = model_version
        self.kind = kind
        self.metric: Metric = metric
        self.dim: int = int(index.d)
        self.nprobe = nprobe
        self.tuned_recall: float | None = None  # recall@10 measured when nprobe was tuned

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def empty(cls, dim: int, *, model_version: str = "", metric: Metric = "ip") -> "VectorIndex":
        return cls(cls._flat(dim, metric), np.zeros(0, np.int64), model_version=model_version,
                   kind="exact", metric=metric)

    @classmethod
    def build(cls, vectors: np.ndarray, ids: Iterable[int] | np.ndarray, *, model_version: str = "",
              kind: Kind = "auto", metric: Metric = "ip", nlist: int | None = None,
              nprobe: int | None = None, target_recall: float = 0.95, train_size: int | None = None,
              seed: int = 0) -> "VectorIndex":
        """Index `vectors` under `ids`. For "ip" pass L2-normalised vectors (cosine).

        kind="auto" picks approx at APPROX_MIN_SIZE vectors and above. For approx, `nprobe`
        is tuned to `target_recall` unless given.
        """
        if metric not in ("ip", "l2"):
            raise ValueError(f"unknown metric {metric!r}")
        x = _as_matrix(vectors)
        id_arr = _as_ids(ids, x.shape[0])
        if kind == "auto":
            kind = "approx" if x.shape[0] >= APPROX_MIN_SIZE else "exact"
        if kind == "exact":
            out = cls(cls._flat(x.shape[1], metric), np.zeros(0, np.int64),
                      model_version=model_version, kind="exact", metric=metric)
            out.add(x, id_arr)
            return out
        if kind != "approx":
            raise ValueError(f"unknown kind {kind!r}")
        return cls._build_ivf(x, id_arr, model_version=model_version, metric=metric, nlist=nlist,
                              nprobe=nprobe, target_recall=target_recall,
                              train_size=train_size, seed=seed)

    @staticmethod
    def _flat(dim: int, metric: Metric) -> faiss.Index:
        flat = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
        return faiss.IndexIDMap2(flat)

    @classmethod
    def _build_ivf(cls, x: np.ndarray, ids: np.ndarray, *, model_version: str, metric: Metric,
                   nlist: int | None, nprobe: int | None, target_recall: float,
                   train_size: int | None, seed: int) -> "VectorIndex":
        n, dim = x.shape
        if n == 0:
            raise ValueError("an approximate index needs vectors to train on")
        nlist = nlist or default_nlist(n)
        fmetric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        quantizer = faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, fmetric)
        # k-means cost is linear in the sample; 64 points per list gives stable centroids
        # at a fraction of faiss's default 256 (1M x 384 trains in seconds, not minutes).
        rng = np.random.default_rng(seed)
        train_size = min(n, train_size or 64 * nlist)
        sample = x if train_size >= n else x[np.sort(rng.choice(n, train_size, replace=False))]
        ivf.cp.seed = seed
        ivf.train(sample)
        ivf.add_with_ids(x, ids)
        out = cls(ivf, ids.copy(), model_version=model_version, kind="approx", metric=metric,
                  nprobe=nprobe or 1)
        if nprobe is None:
            out.tune_nprobe(x, target_recall=target_recall, seed=seed)
        return out

    # --- tuning -----------------------------------------------------------------------------

    def tune_nprobe(self, vectors: np.ndarray, *, target_recall: float = 0.95, k: int = 10,
                    n_queries: int = 1000, z: float = 3.0, seed: int = 0) -> float:
        """Set nprobe to the smallest value whose recall@k reaches `target_recall`, judged by
        a lower confidence bound (mean - z standard errors over queries) so that fresh queries
        from the same distribution meet the target too. Returns the mean recall.

        Queries are indexed vectors themselves ("more like this item"): truth is exact top-(k+1)
        over `vectors` (all indexed vectors, row-aligned with `self.ids`), the query's own id
        dropped from both lists. Doubling finds a bracket, bisection the smallest nprobe in it.
        """
        if self.kind != "approx":
            return 1.0
        x = _as_matrix(vectors, self.dim)
        if x.shape[0] != len(self._ids):
            raise ValueError("pass all indexed vectors, row-aligned with .ids")
        rng = np.random.default_rng(seed)
        rows = rng.choice(x.shape[0], min(n_queries, x.shape[0]), replace=False)
        queries = x[rows]
        _, truth_rows = brute_force_topk(queries, x, k + 1, self.metric)
        truth = [set(self._ids[[r for r in t if r != q][:k]].tolist()) for t, q in zip(truth_rows, rows)]
        self_ids = self._ids[rows]
        nlist = faiss.extract_index_ivf(self._index).nlist

        def measure(probe: int) -> tuple[bool, float]:
            self.nprobe = probe
            _, found = self._search_raw(queries, k + 1)
            per_query = np.array([len(t & (set(f.tolist()) - {s, -1})) / max(1, len(t))
                                  for f, s, t in zip(found, self_ids, truth)])
            mean = float(per_query.mean())
            stderr = float(per_query.std(ddof=1) / np.sqrt(len(per_query))) if len(per_query) > 1 else 0.0
            return mean - z * stderr >= target_recall, mean

        results: dict[int, float] = {}
        low, high = 0, 1  # invariant: `low` fails (0 = nothing probed), `high` is the candidate
        while True:
            ok, results[high] = measure(high)
            if ok or high >= nlist:
                break
            low, high = high, min(high * 2, nlist)
        if ok:
            while high - low > 1:
                mid = (low + high) // 2
                ok_mid, results[mid] = measure(mid)
                low, high = (low, mid) if ok_mid else (mid, high)
        self.nprobe = high
        self.tuned_recall = results[high]
        return self.tuned_recall

    # --- mutation ---------------------------------------------------------------------------

    def add(self, vectors: np.ndarray, ids: Iterable[int] | np.ndarray) -> None:
        x = _as_matrix(vectors, self.dim)
        id_arr = _as_ids(ids, x.shape[0])
        if len(self._ids) and np.isin(id_arr, self._ids).any():
            dup = id_arr[np.isin(id_arr, self._ids)][:5].tolist()
            raise ValueError(f"ids already indexed (remove them first): {dup}")
        self._index.add_with_ids(x, id_arr)
        self._ids = np.concatenate([self._ids, id_arr])

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        id_arr = np.ascontiguousarray(np.fromiter(ids, dtype=np.int64))
        removed = int(self._index.remove_ids(id_arr))
        self._ids = self._ids[~np.isin(self._ids, id_arr)]
        return removed

    # --- queries ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def __contains__(self, item_id: int) -> bool:
        return bool(np.isin(np.int64(item_id), self._ids))

    def vectors(self, ids: Iterable[int]) -> tuple[list[int], np.ndarray]:
        """The stored vectors of those `ids` the index holds: (found ids, row-aligned matrix)."""
        found = [int(i) for i in ids if int(i) in self]
        if not found:
            return [], np.zeros((0, self.dim), np.float32)
        if self.kind == "approx":
            ivf = faiss.extract_index_ivf(self._index)
            if ivf.direct_map.type != faiss.DirectMap.Hashtable:
                ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return found, np.stack([self._index.reconstruct(i) for i in found]).astype(np.float32)

    def _search_raw(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "approx":
            params = faiss.SearchParametersIVF(nprobe=int(self.nprobe or 1))
            return self._index.search(q, k, params=params)
        return self._index.search(q, k)

    def search(self, queries: np.ndarray, k: int, *,
               exclude_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (scores (n,k) float32, ids (n,k) int64), best first.

        Scores are inner products ("ip") or squared distances ("l2"). Rows with fewer than k hits
        (tiny index, or too few probed lists) are padded with id -1. `exclude_ids` are filtered
        out of every row (over-fetching so k real results remain when the index has them).
        """
        q = _as_matrix(queries, self.dim)
        excl = np.unique(np.fromiter(exclude_ids if exclude_ids is not None else (), np.int64))
        k = int(k)
        fetch = min(k + len(excl), len(self))
        pad = -np.inf if self.metric == "ip" else np.inf
        if fetch <= 0 or k <= 0:
            return (np.full((q.shape[0], max(k, 0)), pad, np.float32),
                    np.full((q.shape[0], max(k, 0)), -1, np.int64))
        scores, ids = self._search_raw(q, fetch)
        if len(excl) == 0 and fetch == k:
            return scores, ids
        out_s = np.full((q.shape[0], k), pad, np.float32)
        out_i = np.full((q.shape[0], k), -1, np.int64)
        keep = (ids != -1) & ~np.isin(ids, excl)
        for row in range(q.shape[0]):
            s, i = scores[row][keep[row]][:k], ids[row][keep[row]][:k]
            out_s[row, :len(s)], out_i[row, :len(i)] = s, i
        return out_s, out_i

    # --- persistence --------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write index.faiss, ids.npy and meta.json into `directory` (each replaced atomically)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT_VERSION, "model_version": self.model_version, "kind": self.kind,
                "metric": self.metric, "dim": self.dim, "nprobe": self.nprobe,
                "tuned_recall": self.tuned_recall, "size": len(self),
                "faiss_version": faiss.__version__}
        faiss.write_index(self._index, str(d / (INDEX_FILE + ".tmp")))
        with open(d / (IDS_FILE + ".tmp"), "wb") as fh:
            np.save(fh, self._ids)
        (d / (META_FILE + ".tmp")).write_text(json.dumps(meta, indent=2))
        for name in (INDEX_FILE, IDS_FILE, META_FILE):  # meta last: it marks a complete save
            os.replace(d / (name + ".tmp"), d / name)
        return d

    @classmethod
    def load(cls, directory: str | Path, *, expected_model_version: str | None = None) -> "VectorIndex":
        d = Path(directory)
        meta = json.loads((d / META_FILE).read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported index format {meta.get('format')!r} in {d}")
        if expected_model_version is not None and meta["model_version"] != expected_model_version:
            raise ValueError(f"index in {d} was built with model {meta['model_version']!r}, "
                             f"not {expected_model_version!r}; re-embed and rebuild")
        index = faiss.read_index(str(d / INDEX_FILE))
        ids = np.load(d / IDS_FILE)
        if index.ntotal != len(ids) or index.d != meta["dim"]:
            raise ValueError(f"index files in {d} are inconsistent (size or dim mismatch)")
        out = cls(index, ids, model_version=meta["model_version"], kind=meta["kind"],
                  metric=meta["metric"], nprobe=meta.get("nprobe"))
        out.tuned_recall = meta.get("tuned_recall")
        return out


# --- "more like this group" ----------------------------------------------------------------

def group_centroid(group_vectors: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised members, re-normalised (a unit query vector)."""
    return l2_normalise(l2_normalise(_as_matrix(group_vectors)).mean(axis=0))


def centroid_search(index: VectorIndex, group_vectors: np.ndarray, k: int,
                    exclude_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items nearest the group's centroid, members (`exclude_ids`) left out. 1-D results."""
    scores, ids = index.search(group_centroid(group_vectors), k, exclude_ids=exclude_ids)
    return scores[0], ids[0]


@dataclass(frozen=True)
class LeaveOneOut:
    held_out_id: int
    rank: int            # 0-based rank of the held-out member among non-members; -1 if beyond k
    ids: np.ndarray      # top-k neighbours of the centroid of the other members
    scores: np.ndarray


def leave_one_out_neighbours(index: VectorIndex, group_vectors: np.ndarray,
                             group_ids: Iterable[int], k: int = 10) -> list[LeaveOneOut]:
    """For each member: search with the centroid of the *other* members (they are excluded),
    and report where the held-out member ranks. Measures how well an embedding keeps a seed
    group together; also previews "more like this group" for groups missing one example.
    All centroids go to faiss as one batch.
    """
    x = l2_normalise(_as_matrix(group_vectors))
    gids = np.asarray(list(group_ids), dtype=np.int64)
    if len(gids) != x.shape[0] or len(gids) < 2:
        raise ValueError("need at least two members, one id per vector")
    others = (x.sum(axis=0, keepdims=True) - x) / (len(gids) - 1)
    queries = l2_normalise(others)
    # Exclude all members, then look for the held-out one separately in an over-fetched list.
    fetch = k + len(gids)
    scores, ids = index.search(queries, fetch)
    results = []
    for row, held in enumerate(gids):
        mask = ~np.isin(ids[row], np.delete(gids, row)) & (ids[row] != -1)
        row_ids, row_scores = ids[row][mask][:k], scores[row][mask][:k]
        hit = np.flatnonzero(row_ids == held)
        results.append(LeaveOneOut(int(held), int(hit[0]) if len(hit) else -1, row_ids, row_scores))
    return results
