"""Row-chunked, threaded evaluation of blockwise kernels (numerics-neutral).

Blocks are independent, so a quantizer can run on contiguous chunks of blocks; chunks
fit the cache and NumPy releases the GIL inside its kernels, so a small thread pool
scales over cores. Every output bit is the same as one call on the whole array.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["chunk_ranges", "run_chunks", "CHUNK_ELEMS"]

CHUNK_ELEMS = 1 << 18  # elements per chunk (1 MiB of float32 input)
_POOL: ThreadPoolExecutor | None = None


def _workers() -> int:
    env = os.environ.get("SEMDIALECT_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def chunk_ranges(n_blocks: int, block_size: int):
    step = max(1, CHUNK_ELEMS // max(1, block_size))
    return [(s, min(n_blocks, s + step)) for s in range(0, n_blocks, step)]


def run_chunks(fn, n_blocks: int, block_size: int) -> None:
    """Call fn(start, stop) for every chunk of blocks, in a thread pool when there is
    more than one chunk. fn writes its results into preallocated arrays."""
    global _POOL
    ranges = chunk_ranges(n_blocks, block_size)
    workers = _workers()
    if len(ranges) <= 1 or workers == 1:
        for s, e in ranges:
            fn(s, e)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="semdialect")
    for f in [_POOL.submit(fn, s, e) for s, e in ranges]:
        f.result()
