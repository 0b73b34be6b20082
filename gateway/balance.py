"""Even shares of the API port's connections between the gateway's processes (issue 15).

Every serving process accepts on the one listening socket, and before it accepts it looks at
the others' counts of open connections (a shared memory page made before the fork): a process
with more than the least busy of the others — or as many, when it took the last connection —
lets them take the next one, waiting at most `MAX_DEFER_SECONDS`, so a stopped or stuck sibling
delays a new connection by that and no more. With SO_REUSEPORT the kernel hashed each
connection to a process instead: 50 keep-alive clients split 29/21 at random, and the busier
process's p95 latency was 1.4 to 1.7 times the other's (docs/performance.md "API latency").
"""

from __future__ import annotations

import mmap
import socket
import time
from typing import Any

import eventlet
from eventlet.greenio import GreenSocket
from eventlet.greenpool import GreenPool
from eventlet.hubs import trampoline

MAX_DEFER_SECONDS = 0.05
DEFER_STEP_SECONDS = 0.001


class Balance:
    """The processes' open-connection counts and who accepted last, in one shared page."""

    def __init__(self, processes: int) -> None:
        # Slots 0..processes-1: each process's open connections (written only by it);
        # the last slot: the number of the process that accepted last.
        self._slots = memoryview(mmap.mmap(-1, 8 * (processes + 1))).cast("q")
        self.processes = processes

    def listener(self, sock: socket.socket, number: int) -> BalancedListener:
        """`sock` as process `number` (1..processes) should accept on it."""
        return BalancedListener(sock, self, number - 1)

    def pool(self, number: int, size: int) -> GreenPool:
        """The green pool of process `number`'s connections, counting them while they last."""
        return _CountingPool(size, self._slots, number - 1)

    def should_wait(self, slot: int) -> bool:
        """Has `slot` more open connections than another process, or as many and took the last?"""
        mine = self._slots[slot]
        others = [self._slots[i] for i in range(self.processes) if i != slot]
        fewest = min(others) if others else mine
        return mine > fewest or (mine == fewest and bool(others)
                                 and self._slots[self.processes] == slot + 1)

    def accepted(self, slot: int) -> None:
        self._slots[self.processes] = slot + 1


class BalancedListener:
    """A listening socket whose accept() first lets less busy processes go (see the module)."""

    def __init__(self, sock: socket.socket, balance: Balance, slot: int) -> None:
        self._sock = sock
        self._balance = balance
        self._slot = slot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def accept(self) -> tuple[GreenSocket, Any]:
        """The next connection, once one waits and this process's turn has come (or waited
        long enough); what another process took meanwhile is not waited for here."""
        while True:
            trampoline(self._sock.fileno(), read=True)  # a connection waits
            deadline = time.monotonic() + MAX_DEFER_SECONDS
            while self._balance.should_wait(self._slot) and time.monotonic() < deadline:
                eventlet.sleep(DEFER_STEP_SECONDS)
            try:
                client, address = self._sock.fd.accept()  # the plain non-blocking socket
            except BlockingIOError:
                continue  # another process took it
            self._balance.accepted(self._slot)
            client.setblocking(False)
            return GreenSocket(client), address


class _CountingPool(GreenPool):
    """A GreenPool whose slot in the shared page counts the connections it is serving."""

    def __init__(self, size: int, slots: memoryview, slot: int) -> None:
        super().__init__(size)
        self._slots = slots
        self._slot = slot

    def spawn(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        self._slots[self._slot] += 1
        return super().spawn(self._counted, function, *args, **kwargs)

    def _counted(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            self._slots[self._slot] -= 1
