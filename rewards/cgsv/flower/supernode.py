"""``flower-supernode`` with a shorter idle wait, for local federations.

Flower 1.42's SuperNode sleeps a fixed 3 s whenever a poll of the SuperLink finds
no message (``flwr/supernode/start_client_internal.py``; no option changes it), so
each round's message waits 1.5 s on average, and up to 3 s, before a party starts
training. This launcher caps every sleep of that loop at ``--idle-s`` seconds and
then runs Flower's own ``flower-supernode`` with the remaining arguments; nothing
else changes (same messages, same logs). `pipeline.federation` uses it for the
local runs of ``fl.engine = "flower"``; a party machine may use it in place of
``flower-supernode`` (docs/federated.md §4). A shorter wait costs one more poll
(one small gRPC call) per party and wait.

Usage:

    python -m rewards.cgsv.flower.supernode --idle-s 0.25 [flower-supernode args]
"""

from __future__ import annotations

import sys
import time
from typing import Any


class _CappedTime:
    """The ``time`` module, with ``sleep`` capped at ``cap`` seconds.

    Example:
        >>> t = _CappedTime(0.01)
        >>> t0 = time.monotonic(); t.sleep(5); time.monotonic() - t0 < 1
        True
    """

    def __init__(self, cap: float):
        self.cap = cap

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.cap))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def main(argv: list[str] | None = None) -> None:
    """Patch the SuperNode loop's sleeps, then run ``flower-supernode``."""
    args = list(sys.argv[1:] if argv is None else argv)
    cap = 3.0
    if args[:1] == ["--idle-s"]:
        cap = float(args[1])
        args = args[2:]
    import flwr.supernode.start_client_internal as loop
    from flwr.supernode.cli import flower_supernode

    loop.time = _CappedTime(cap)  # type: ignore[assignment]
    sys.argv = ["flower-supernode", *args]
    flower_supernode()


if __name__ == "__main__":
    main()
