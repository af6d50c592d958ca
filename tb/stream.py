"""cocotb driver and monitor of `amaranth.lib.stream` valid/ready interfaces.

Timing convention (both sides): inputs are written just after the falling edge of
`clk`, handshakes are sampled in the ReadOnly phase of the same time step, i.e. with
exactly the values the next rising edge will see. A transfer in "cycle c" therefore
happens at the rising edge that ends cycle c.
"""

from __future__ import annotations

import random

from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly

from semdialect.sim.bulk import cycle_budget  # the one stream budget (compiled path too)

__all__ = ["CycleClock", "StreamDriver", "StreamMonitor", "cycle_budget"]


class CycleClock:
    """Cycle numbers from simulation time (no extra coroutine per cycle)."""

    def __init__(self, clk, period_steps: int):
        self.clk = clk
        self.period = period_steps
        self.falling = FallingEdge(clk)
        self.readonly = ReadOnly()

    def now(self) -> int:
        return int(get_sim_time("step")) // self.period


class StreamDriver:
    """Feeds payload integers into a valid/ready sink with random valid gaps.

    `valid` stays asserted (payload stable) until the block is accepted. Records the
    cycle of each handshake and whether reset was asserted at that edge."""

    def __init__(self, clock: CycleClock, valid, ready, payload, rst=None,
                 gap: float = 0.0, seed: int = 0):
        self.clock = clock
        self.valid = valid
        self.ready = ready
        self.payload = payload
        self.rst = rst
        self.gap = gap
        self.rng = random.Random(seed)
        self.accepted: list[tuple[int, int, int]] = []  # (item index, cycle, rst)
        self.stopped = False
        self.valid.value = 0

    def stop(self) -> None:
        self.stopped = True

    async def run(self, items: list[int], max_cycles: int | None = None) -> None:
        """Present every item; raise RuntimeError past `max_cycles` (the cycle budget)."""
        clock, rng, gap = self.clock, self.rng, self.gap
        valid_h, ready_h, payload_h = self.valid, self.ready, self.payload
        n = len(items)
        idx = 0
        presenting = False
        accepted = False
        valid_now = 0
        cycles = 0
        while True:
            await clock.falling
            cycles += 1
            if max_cycles is not None and cycles > max_cycles:
                valid_h.value = 0
                raise RuntimeError(
                    f"cycle budget exceeded: {max_cycles} cycles and only {idx} of {n} blocks "
                    f"accepted (gap {gap}); the DUT stalls or the stimulus never ends")
            if accepted:
                idx += 1
                presenting = False
            if idx >= n or self.stopped:
                valid_h.value = 0
                return
            if not presenting:
                if gap and rng.random() < gap:
                    if valid_now:
                        valid_h.value = 0
                        valid_now = 0
                else:
                    payload_h.value = items[idx]
                    if not valid_now:
                        valid_h.value = 1
                        valid_now = 1
                    presenting = True
            await clock.readonly
            accepted = presenting and ready_h.value == 1
            if accepted:
                r = int(self.rst.value) if self.rst is not None else 0
                self.accepted.append((idx, clock.now(), r))


class StreamMonitor:
    """Collects payloads from a valid/ready source under random ready backpressure.

    backpressure: probability that ready is low in a cycle. Stops after `expect`
    transfers, on stop(), or after `idle_limit` cycles without a transfer."""

    def __init__(self, clock: CycleClock, valid, ready, payload, backpressure: float = 0.0,
                 seed: int = 1):
        self.clock = clock
        self.valid = valid
        self.ready = ready
        self.payload = payload
        self.bp = backpressure
        self.rng = random.Random(seed)
        self.values: list[int] = []
        self.cycles: list[int] = []
        self.stopped = False
        self.ready.value = 0

    def stop(self) -> None:
        self.stopped = True

    async def run(self, expect: int | None = None, idle_limit: int = 2000) -> None:
        clock, rng, bp = self.clock, self.rng, self.bp
        valid_h, ready_h, payload_h = self.valid, self.ready, self.payload
        values, cycles = self.values, self.cycles
        ready_now = -1
        idle = 0
        while not self.stopped and (expect is None or len(values) < expect):
            await clock.falling
            r = 0 if (bp and rng.random() < bp) else 1
            if r != ready_now:
                ready_h.value = r
                ready_now = r
            await clock.readonly
            if r and valid_h.value == 1:
                values.append(payload_h.value.to_unsigned())
                cycles.append(clock.now())
                idle = 0
            else:
                idle += 1
                if idle > idle_limit:
                    break
        await clock.falling
        ready_h.value = 0
