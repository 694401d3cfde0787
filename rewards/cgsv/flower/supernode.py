"""``flower-supernode`` with shorter waits, for local federations.

Flower 1.42's SuperNode loop (``flwr/supernode/start_client_internal.py``; no
option changes it) sleeps a fixed 3 s whenever a poll of the SuperLink finds no
message, and 0.5 s at a time while it waits for the ClientApp's reply. This
launcher changes only those sleeps, then runs Flower's own ``flower-supernode``
with the remaining arguments (same messages, same logs):

- the idle wait backs off: ``--idle-min-s`` after a message, doubling on each
  empty poll up to ``--idle-s``; in lock-step rounds the next message usually
  comes soon after the last reply, so it is picked up within a few tens of ms
  while an idle node still polls only every ``--idle-s``;
- the shorter waits (the reply, in the node's own memory) last at most
  ``--busy-s``;
- a pull of a message object the ServerApp has not pushed yet is retried after
  20 ms, not Flower's 1 s (`rewards.cgsv.flower.records.shorten_pull_backoff`);
- with ``--wake PATH`` it wakes the node's SuperExec (`rewards.cgsv.flower.superexec`)
  as soon as a message is stored, instead of letting it find the task on its
  next poll.

`pipeline.federation` uses it for the local runs of ``fl.engine = "flower"``; a
party machine may use it in place of ``flower-supernode`` (docs/federated.md §5).
Each poll is one small HTTP call to the SuperLink.

Usage:

    python -m rewards.cgsv.flower.supernode --idle-s 0.25 [--idle-min-s 0.02]
        [--busy-s 0.01] [--wake PATH] [flower-supernode args]
"""

from __future__ import annotations

import sys
import time
from typing import Any

#: Flower's fixed idle wait (s); shorter sleeps of the loop are its busy waits
FLOWER_IDLE_S = 3.0


class _NodeTime:
    """The ``time`` module, with the SuperNode loop's sleeps shortened.

    A sleep of `FLOWER_IDLE_S` or more (the idle wait) lasts ``idle``, which
    doubles after each one up to ``cap``; `reset` sets it back to ``floor``.
    Any shorter sleep lasts at most ``busy``.

    Example:
        >>> t = _NodeTime(cap=0.04, floor=0.01, busy=0.001)
        >>> waits = []
        >>> for _ in range(4):
        ...     waits.append(t.idle); t.sleep(3)
        >>> waits
        [0.01, 0.02, 0.04, 0.04]
        >>> t.reset(); t.idle
        0.01
    """

    def __init__(self, cap: float, floor: float, busy: float):
        self.cap = cap
        self.floor = min(floor, cap)
        self.busy = busy
        self.idle = self.floor

    def reset(self) -> None:
        self.idle = self.floor

    def sleep(self, seconds: float) -> None:
        if seconds >= FLOWER_IDLE_S:
            wait, self.idle = self.idle, min(2 * self.idle, self.cap)
            time.sleep(wait)
        else:
            time.sleep(min(seconds, self.busy))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def take_option(args: list[str], name: str, default: str | None = None) -> str | None:
    """Remove ``name VALUE`` from ``args``; return VALUE (``default`` if absent).

    Shared by the SuperNode and SuperExec wrappers, which take their own options
    out before handing the rest to Flower's command line.

    Example:
        >>> args = ["--wake", "/tmp/w", "--insecure"]
        >>> take_option(args, "--wake"), args
        ('/tmp/w', ['--insecure'])
        >>> take_option(args, "--busy-s", "0.01")
        '0.01'
    """
    if name not in args:
        return default
    k = args.index(name)
    value = args[k + 1]
    del args[k : k + 2]
    return value


def main(argv: list[str] | None = None) -> None:
    """Patch the SuperNode loop's sleeps, then run ``flower-supernode``."""
    args = list(sys.argv[1:] if argv is None else argv)
    cap = float(take_option(args, "--idle-s", str(FLOWER_IDLE_S)) or FLOWER_IDLE_S)
    floor = float(take_option(args, "--idle-min-s", "0.02") or 0.02)
    busy = float(take_option(args, "--busy-s", "0.01") or 0.01)
    wake_path = take_option(args, "--wake", None)
    import flwr.supernode.start_client_internal as loop
    from flwr.supernode.cli import flower_supernode

    from rewards.cgsv.flower.records import shorten_pull_backoff
    from rewards.cgsv.flower.superexec import wake

    shorten_pull_backoff()
    clock = _NodeTime(cap, floor, busy)
    pull = loop._pull_and_store_message

    def pull_and_wake(**kwargs: Any) -> int | None:
        run_id = pull(**kwargs)
        if run_id is not None:
            clock.reset()
            if wake_path is not None:
                wake(wake_path)
        return run_id

    loop.time = clock  # type: ignore[assignment]
    loop._pull_and_store_message = pull_and_wake  # type: ignore[assignment]
    sys.argv = ["flower-supernode", *args]
    flower_supernode()


if __name__ == "__main__":
    main()
