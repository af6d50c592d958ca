"""semdialect.sim: simulation flows that hold the generated RTL bit-exact against the
golden model (docs/verification.md).

* `semdialect.sim.configs`    - the simulated configurations (unit, block size, input, book)
* `semdialect.sim.verilator`  - generate Verilog, build it with Verilator (cached per
  configuration under build/sim/<config>/), run the cocotb testbench of tb/
* `semdialect.sim.stimulus`   - random and edge-case block sources, vector files
* `semdialect.sim.scoreboard` - expected results from the golden model, batched
  bit-exact comparison, mismatch reports
"""

from __future__ import annotations

from .configs import CONFIGS, QUICK_CONFIGS, SimConfig, get_config

__all__ = ["CONFIGS", "QUICK_CONFIGS", "SimConfig", "get_config"]
