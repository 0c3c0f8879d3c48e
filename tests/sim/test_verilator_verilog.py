"""The Verilog the Verilated programs are built from: registers are assigned in their clocked
blocks, not copied from a next-value temporary every cycle (what makes the virtual board
about 10 % faster), and an expression that only a register reads, across ports, is computed
where the register is assigned. That the result behaves the same is shown by the virtual
board's comparisons with the in-process simulator."""

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


class Sum(wiring.Component):
    a: In(8)
    b: In(8)
    s: Out(9)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.s.eq(self.a + self.b)
        return m


class LatchedSum(wiring.Component):
    en: In(1)
    a: In(8)
    b: In(8)
    q: Out(9)

    def elaborate(self, platform):
        m = Module()
        m.submodules.sum = total = Sum()
        m.d.comb += [total.a.eq(self.a), total.b.eq(self.b)]
        with m.If(self.en):
            m.d.sync += self.q.eq(total.s)
        return m


def test_an_expression_read_by_one_register_is_computed_where_it_is_assigned():
    text = verilator_verilog(LatchedSum(), "latched_sum")
    assert text.count("module ") == 1                   # flattened
    assert "sum." not in text                           # the ports read through, dropped
    assert ("    if (en) begin\n"
            "      q <= $unsigned(9'(a  + b )) ;\n"
            "    end\n") in text
