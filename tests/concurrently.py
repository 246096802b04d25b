"""Running actions in threads released at the same moment, for the race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial


def together(*actions: Callable[[], object], timeout: float = 60) -> list:
    """Run the callables in threads released at once; their results, in order."""
    barrier = threading.Barrier(len(actions))

    def go(action: Callable[[], object]) -> object:
        barrier.wait(timeout=timeout)
        return action()

    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(go, actions))


def n_together(n: int, action: Callable[[int], object]) -> list:
    """action(0) ... action(n - 1), released at once."""
    return together(*(partial(action, i) for i in range(n)))
