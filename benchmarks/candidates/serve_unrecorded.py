"""``tollway serve`` with usage recording off. Benchmark-only.

    serve_unrecorded.py serve -c CONFIG --port P --admin-port A

Everything is the product's own start-up (`tollway.cli.main`, the same uvicorn settings, the
admin server, the GC freeze after start-up), except that ``Accountant.finish`` does
nothing: no usage record is built, and nothing reaches the access log, the metrics or
the usage writer's queue. The accountant, writer and access-log tasks still start, and idle.

The gateway takes ``accountant.finish`` as a bound method when the runtime is built,
so the class attribute is replaced before anything is built.
"""

from __future__ import annotations

import sys

from tollway.exchange import Exchange
from tollway.usage.accountant import Accountant


def _not_recorded(self: Accountant, ex: Exchange) -> None:
    return None


Accountant.finish = _not_recorded  # type: ignore[method-assign]

from tollway.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
