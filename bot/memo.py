"""A bounded memo for values derived on the hot path (first in, first out).

An ``OrderedDict``: the oldest entry leaves in O(1); finding a plain dict's first key after many
deletions at its front scans the deleted slots (~4 µs at 20,000 entries).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for ``key``, made (and kept, the oldest leaving when full) if missing."""
        found = self._items.get(key)
        if found is None:
            if len(self._items) >= self._limit:
                self._items.popitem(last=False)
            found = self._items[key] = make()
        return found

    def __len__(self) -> int:
        return len(self._items)
