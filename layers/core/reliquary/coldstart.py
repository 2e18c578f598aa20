"""A handler module's loading, without the garbage collector scanning what it builds.

Loading a handler builds about 100,000 objects that live as long as the container: modules, classes,
pydantic's validators, botocore's service models, the clients' settings. CPython runs its collector by
allocation count, so while they are built it scans the growing heap again and again, and finds almost
nothing: no handler's import leaves more than about 1,300 objects in reference cycles. That scanning was
about an eighth of each handler's import CPU time (docs/performance.md, "Cold starts").

``deferred_collection`` turns the collector off for the block and on again after it. In a Lambda container
(``LAMBDA_TASK_ROOT`` set) it first freezes what exists (``gc.freeze``): the objects move to a permanent
generation that collections never scan, so the first request and every later one do not rescan them
either, and the few cycles the import left stay in memory. A container runs one function for its whole
life, the case gc.freeze is made for; a test process or the local runtime, which import handlers into a
process that outlives them, only get the collector back.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_collection() -> Iterator[None]:
    if not gc.isenabled():  # the process manages its collector itself
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if "LAMBDA_TASK_ROOT" in os.environ:
            gc.freeze()
        gc.enable()
