"""Process settings the entry points apply once, after start-up.

The cyclic garbage collector runs its youngest generation every 700 allocations by default;
a 10,000-line batch allocates millions of short-lived objects (none of them cyclic), so it
ran thousands of collections and several full ones per batch, some 15% of a batch's time.
``tune_gc`` moves what start-up created (modules, the schema, the configuration) out of the
collector's sight (``gc.freeze``) and collects the youngest generation every 50,000
allocations instead: cycles are still collected, a little later.
"""

from __future__ import annotations

import gc

YOUNGEST = 50_000


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNGEST, middle, oldest)
