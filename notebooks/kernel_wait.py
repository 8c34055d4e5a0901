"""Bounded waits for kernel messages: a guard against the notebook-execution hang (kernel and client both idle).

Runs of notebook 07 stopped three times (2026-12-01 and 2026-12-02; ipykernel 7.4 and 6.31) with the kernel idle in
its event loop and nbclient idle in `run_until_complete`. nbclient waits for a cell's `execute_reply` with one
`shell_channel.get_msg(timeout=<cell timeout>)` (4 h in `execute.py`, 1200 s under nbmake) and for its outputs with
`iopub_channel.get_msg(timeout=None)`. Each is a single `zmq.asyncio` poll, woken by the socket's edge-triggered
file descriptor. If that one wake-up is lost (pyzmq#2173 reports `zmq.asyncio` receives that miss wake-ups;
nbclient#312 a cell with widgets whose reply is only read when the wait times out), the reply sits unread in the
socket until the timeout: hours in a full run, a red CI under nbmake.

`install()` makes every wait of `jupyter_client`'s asyncio channels a series of polls of at most `STEP` seconds,
keeping the caller's overall timeout. Each new poll first asks the socket for pending events, so a message that
arrived without waking the poller is read within `STEP` seconds. A wait that ends with a message is unchanged.
If instead the kernel never read the request (the ipykernel 7 failure, ipython/ipykernel#1554), this does not help:
the wait still runs to its timeout. The hang has not been reproduced on purpose: 14147 short cells (prints, widgets,
progress bars; 200 s through nbclient, 2026-12-02) ran without it. So this is a guard against the likely cause, not a
proven fix; `execute.py` names the cell of any later hang.

`notebooks/execute.py` and `notebooks/conftest.py` (nbmake runs nbclient inside pytest) call `install()`.
"""
from __future__ import annotations

import time
from queue import Empty

STEP = 2.0  # seconds; a lost wake-up costs at most this much


def bounded(get_msg, step: float = STEP):
    """Wrap an async `get_msg(self, timeout=None)` so no single wait is longer than `step` seconds; the overall
    `timeout` (None: wait for ever) is kept, and Empty is raised only once it has passed."""

    async def get_msg_in_steps(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = step if deadline is None else max(0.0, min(step, deadline - time.monotonic()))
            try:
                return await get_msg(self, timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    get_msg_in_steps.__wrapped__ = get_msg
    return get_msg_in_steps


def install(step: float = STEP) -> None:
    """Patch `jupyter_client.channels.AsyncZMQSocketChannel.get_msg` (what nbclient's kernel client reads with);
    calling it again changes nothing."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    if not hasattr(AsyncZMQSocketChannel.get_msg, "__wrapped__"):
        AsyncZMQSocketChannel.get_msg = bounded(AsyncZMQSocketChannel.get_msg, step)
