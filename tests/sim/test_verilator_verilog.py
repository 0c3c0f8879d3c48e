"""The Verilog the Verilated programs are built from: registers are assigned in their clocked
blocks, not copied from a next-value temporary every cycle (what makes the virtual board
about 10 % faster). That the result behaves the same is shown by the virtual board's
comparisons with the in-process simulator."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from heraldry.sim.cocotb_runner import verilator_verilog


class Held(wiring.Component):
    en: In(1)
    d: In(8)
    q: Out(8)
    count: Out(4)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.q.eq(self.d)
        m.d.sync += self.count.eq(self.count + 1)
        return m


def test_registers_are_assigned_in_their_clocked_blocks():
    text = verilator_verilog(Held(), "held")
    assert "always @*" not in text
    assert ("  always @(posedge clk) begin\n"
            "    if (en) begin\n"
            "      q <= d;\n"
            "    end\n"
            "    if (rst) begin\n"
            "      q <= 8'h00;\n"
            "    end\n"
            "  end\n") in text
