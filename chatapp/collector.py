"""Python's cyclic garbage collector, set for a server that streams.

A full collection walks every object the collector tracks while the one event loop waits.
With 300 answers streaming on one core (bench/load.py), each took 70-140 ms, came every few
seconds, and held every token of every answer for as long: those pauses alone made the p99
lag (~270 ms; ~180 ms with the collector off). So, once the application is loaded:

- `gc.freeze()` takes what startup made (modules, Django, templates: most of the heap) out
  of the collector's sight; it lives as long as the process anyway;
- the youngest generation is collected after 10,000 new objects instead of 700, so the older
  generations, and the full collections, come ~14x less often. A young collection stays a
  few milliseconds; reference cycles are still collected, only later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def set_for_serving() -> None:
    gc.collect()  # what startup left as garbage is not worth freezing
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
