"""Everything hb2r keeps: the `Store` protocol (`agent.store.protocol`) and its stores.

`StoreError` is what callers catch when the store itself fails.
"""

from agent.store.sql import StoreError

__all__ = ["StoreError"]
