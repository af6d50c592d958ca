"""semdialect.sim: simulation, synthesis and report flows (Verilator via cocotb, Yosys)."""
