"""How ai-cache's semantic index should find the nearest stored prompt: brute force
(numpy, one matrix-vector product) against approximate nearest-neighbour indexes
(usearch's HNSW, hnswlib's HNSW), on 100k stored vectors of 384 and 1536 dimensions.

    .venv/bin/pip install numpy usearch hnswlib     # the ANN libraries only for this script
    OPENBLAS_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/vector_index.py

Measured per method and size: the time to build the index from scratch, to add one
vector to a built index (what a cache store costs), one lookup (top 1, the cosine
similarity of unit vectors), and the share of lookups whose top hit is the exact nearest
neighbour (recall@1). The stored vectors are random unit vectors; each query is a stored
vector with noise added (a paraphrase close to one stored prompt, as a cache hit is), so
the exact answer is known and recall means something. One thread, as the gateway's event
loop has one core (``OPENBLAS_NUM_THREADS=1`` keeps numpy's BLAS to it too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Lookup = Callable[[np.ndarray], int]


def _unit(rows: np.ndarray) -> np.ndarray:
    out: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out.astype(np.float32)


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 4),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 4),
    }


def brute_force(stored: np.ndarray) -> tuple[Lookup, Callable[[np.ndarray], None]]:
    # Rows in a matrix with room to grow (its capacity doubles when full), as the
    # gateway's index keeps them: adding a row is a copy of one row, not of the matrix.
    matrix = np.empty((len(stored) * 2, stored.shape[1]), dtype=np.float32)
    matrix[: len(stored)] = stored
    count = len(stored)

    def lookup(q: np.ndarray) -> int:
        return int(np.argmax(matrix[:count] @ q))

    def add(v: np.ndarray) -> None:
        nonlocal count
        matrix[count] = v
        count += 1

    return lookup, add


def usearch_index(stored: np.ndarray) -> tuple[Lookup, Callable[[np.ndarray], None]]:
    from usearch.index import Index

    index = Index(ndim=stored.shape[1], metric="cos", dtype="f32")
    index.add(np.arange(len(stored)), stored, threads=1)
    next_key = len(stored)

    def lookup(q: np.ndarray) -> int:
        return int(index.search(q, 1, threads=1).keys[0])

    def add(v: np.ndarray) -> None:
        nonlocal next_key
        index.add(next_key, v, threads=1)
        next_key += 1

    return lookup, add


def hnswlib_index(stored: np.ndarray) -> tuple[Lookup, Callable[[np.ndarray], None]]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=stored.shape[1])
    index.init_index(max_elements=len(stored) + 10_000, ef_construction=200, M=16)
    index.set_num_threads(1)
    index.add_items(stored, np.arange(len(stored)))
    index.set_ef(64)
    next_key = len(stored)

    def lookup(q: np.ndarray) -> int:
        labels, _ = index.knn_query(q, k=1)
        return int(labels[0][0])

    def add(v: np.ndarray) -> None:
        nonlocal next_key
        index.add_items(v[None, :], [next_key])
        next_key += 1

    return lookup, add


METHODS: dict[str, Callable[[np.ndarray], tuple[Lookup, Callable[[np.ndarray], None]]]] = {
    "numpy brute force": brute_force,
    "usearch HNSW": usearch_index,
    "hnswlib HNSW": hnswlib_index,
}


def _measure(
    name: str, stored: np.ndarray, probes: np.ndarray, exact: list[int], rng: np.random.Generator
) -> dict[str, Any]:
    n, dims = stored.shape
    t0 = time.perf_counter()
    lookup, add = METHODS[name](stored)
    build_s = time.perf_counter() - t0
    lookup(probes[0])  # warm
    found: list[int] = []
    times = _timed(lambda: found.append(lookup(probes[len(found)])), len(probes))
    recall = sum(1 for got, want in zip(found, exact, strict=True) if got == want) / len(probes)
    added = iter(_unit(rng.standard_normal((50, dims), dtype=np.float32)))
    add_times = _timed(lambda: add(next(added)), 50)
    return {
        "method": name,
        "vectors": n,
        "dims": dims,
        "build_s": round(build_s, 2),
        "lookup": _summary(times),
        "add_one": _summary(add_times),
        "recall_at_1": round(recall, 3),
    }


def run(n: int, dims: int, queries: int, methods: list[str], seed: int = 7) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    stored = _unit(rng.standard_normal((n, dims), dtype=np.float32))
    targets = rng.integers(0, n, queries)
    # A paraphrase: the stored vector plus noise, still clearly nearest to it (cosine ~0.9).
    noisy = stored[targets] + rng.standard_normal((queries, dims), dtype=np.float32) * (0.5 / np.sqrt(dims))
    probes = _unit(noisy)
    exact = [int(np.argmax(stored @ q)) for q in probes]
    rows = []
    for name in methods:
        rows.append(_measure(name, stored, probes, exact, rng))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 1536])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    for dims in args.dims:
        run(args.vectors, dims, args.queries, args.methods)


if __name__ == "__main__":
    main()
