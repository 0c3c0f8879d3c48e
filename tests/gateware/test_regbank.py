"""Register map and register bank, in Amaranth's simulator."""

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from heraldry.gateware.counters import EventCounters, counter_paths
from heraldry.gateware.layouts import CoreParameters
from heraldry.gateware.regbank import RegisterBank
from heraldry.gateware.regmap import (CONTROL_SNAPSHOT, CONTROL_START, CONTROL_STOP,
                                      ID_WORDS, MAGIC, PROTOCOL_VERSION, Access, RegisterMap,
                                      SocParameters, field_at)


def test_map_is_derived_from_parameters():
    soc = SocParameters(core=CoreParameters(n_channels=4, n_windows=1, n_outputs=2),
                        clk_freq=48_000_000)
    regmap = RegisterMap(soc)
    # Identification block at fixed addresses, whatever the parameters.
    assert regmap["id.magic"].addr == 0 and regmap["id.magic"].reset == MAGIC
    assert regmap["id.protocol_version"].reset == PROTOCOL_VERSION
    assert regmap["id.clk_freq"].reset == 48_000_000
    assert regmap["id.n_channels"].reset == 4
    assert regmap["id.table_depth"].reset == 1 << 8
    assert regmap["id.map_hash"].reset == regmap.hash
    assert regmap["control"].addr == ID_WORDS
    # One register per scalar of the config layout, all RW, contiguous.
    config = regmap.group("config.")
    assert [r.name for r in config[:3]] == ["config.period", "config.windows.0.start",
                                            "config.windows.0.length"]
    assert all(r.access is Access.RW and r.words == 1 for r in config)
    first, n = regmap.span("config.")
    assert n == len(config) == 1 + 1 * 2 + 2 * 2 + 1 + 1 + 3 + 1
    # 48-bit counters are two-word snapshots.
    attempts = regmap["counters.attempts"]
    assert attempts.access is Access.SNAPSHOT and attempts.words == 2
    assert regmap["counters.multi_clicks.0.3"].width == 48
    table = regmap["table"]
    assert table.count == 1 << 8 and table.addr + table.words == regmap.size
    # Addresses never overlap.
    words = sorted(a for r in regmap for a in range(r.addr, r.addr + r.words))
    assert words == list(range(regmap.size))


def test_idle_only_registers_are_the_configuration_and_the_table():
    """Written only while no run is active: what the core reads throughout a run. The
    strobes and the link emulator's registers stay writable during runs; the attribute is
    part of the map's description (its hash)."""
    regmap = RegisterMap(SocParameters())
    idle_only = {r.name for r in regmap if r.idle_only}
    assert idle_only == {r.name for r in regmap.group("config.")} | {"table"}
    writable = {r.name for r in regmap if r.access.writable}
    assert writable - idle_only == {"control"} | {r.name for r in regmap.group("emulator.")}
    assert all(r.describe()[-1] == r.idle_only for r in regmap)
    assert "| rw (idle only) |" in regmap.markdown()


def test_map_hash_changes_with_structure():
    a = RegisterMap(SocParameters())
    b = RegisterMap(SocParameters(core=CoreParameters(n_outputs=3)))
    c = RegisterMap(SocParameters(clk_freq=50_000_000))
    assert a.hash != b.hash
    assert a.hash == c.hash        # the clock is a value in the map, not its structure


class BankWithCounters(Elaboratable):
    """The bank with the event counters it reads, as in the SoC: the bank's ports, plus
    the counters' ``counts`` and ``clear``."""

    def __init__(self, regmap):
        self.bank = RegisterBank(regmap)
        self.event_counters = EventCounters(regmap.soc.core)
        self.counts = self.event_counters.counts
        self.clear = self.event_counters.clear

    def __getattr__(self, name):
        return getattr(self.bank, name)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        m.submodules.counters = self.event_counters
        wiring.connect(m, self.bank.counters, self.event_counters.port)
        return m


def run_bank(regmap, bench):
    dut = BankWithCounters(regmap)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    async def testbench(ctx):
        await bench(ctx, dut)
    sim.add_testbench(testbench)
    sim.run()


async def write(ctx, dut, addr, value):
    """A one-cycle write strobe; returns in the cycle after it."""
    ctx.set(dut.bus.addr, addr)
    ctx.set(dut.bus.w_data, value)
    ctx.set(dut.bus.w_stb, 1)
    await ctx.tick()
    ctx.set(dut.bus.w_stb, 0)


async def write_acked(ctx, dut, addr, value, max_cycles=200):
    """A write, waiting for ``w_ack`` like the protocol engine."""
    await write(ctx, dut, addr, value)
    for _ in range(max_cycles):
        await ctx.tick()
        if ctx.get(dut.bus.w_ack):
            return
    raise AssertionError(f"no w_ack within {max_cycles} cycles")


async def read(ctx, dut, addr, max_cycles=200):
    """The word at ``addr``; also checks that ``r_data`` holds it after ``r_ack``."""
    ctx.set(dut.bus.addr, addr)
    ctx.set(dut.bus.r_stb, 1)
    await ctx.tick()
    ctx.set(dut.bus.r_stb, 0)
    for _ in range(max_cycles):
        if ctx.get(dut.bus.r_ack):
            value = ctx.get(dut.bus.r_data)
            await ctx.tick()
            assert ctx.get(dut.bus.r_ack) == 0 and ctx.get(dut.bus.r_data) == value
            return value
        await ctx.tick()
    raise AssertionError(f"no r_ack within {max_cycles} cycles")


#: Cycles from a bus write to its register, and to a control strobe.
WRITE_LATENCY = 3
STROBE_LATENCY = 3


def test_bank_config_table_control_snapshot():
    regmap = RegisterMap(SocParameters())
    seen = {}

    async def bench(ctx, dut):
        assert await read(ctx, dut, 0) == MAGIC
        assert await read(ctx, dut, regmap["id.n_windows"].addr) == 2
        # Configuration registers drive the config port WRITE_LATENCY cycles after the
        # write, masked to their width, and read back the same.
        await write(ctx, dut, regmap["config.period"].addr, 1234)
        await write(ctx, dut, regmap["config.windows.1.length"].addr, 0x1_0007)  # 16 bits
        await write(ctx, dut, regmap["config.timeout"].addr, 0xDEADBEEF)
        for _ in range(WRITE_LATENCY - 1):
            assert ctx.get(dut.config.timeout) == 0
            await ctx.tick()
        assert ctx.get(dut.config.period) == 1234
        assert ctx.get(dut.config.windows[1].length) == 7
        assert ctx.get(dut.config.timeout) == 0xDEADBEEF
        assert await read(ctx, dut, regmap["config.windows.1.length"].addr) == 7
        assert await read(ctx, dut, regmap["config.timeout"].addr) == 0xDEADBEEF
        # Table writes are one-cycle strobes with the entry's index.
        await write(ctx, dut, regmap["table"].addr + 201, 3)
        assert ctx.get(dut.table.en) == 0
        await ctx.tick()
        assert (ctx.get(dut.table.en), ctx.get(dut.table.addr), ctx.get(dut.table.data)) \
            == (1, 201, 3)
        await ctx.tick()
        assert ctx.get(dut.table.en) == 0
        # Control strobes, STROBE_LATENCY cycles after the write.
        await write(ctx, dut, regmap["control"].addr, CONTROL_START | CONTROL_STOP)
        for _ in range(STROBE_LATENCY - 1):
            assert (ctx.get(dut.start), ctx.get(dut.stop)) == (0, 0)
            await ctx.tick()
        assert (ctx.get(dut.start), ctx.get(dut.stop)) == (1, 1)
        await ctx.tick()
        assert (ctx.get(dut.start), ctx.get(dut.stop)) == (0, 0)
        # Snapshot: the counters are captured as they are in the cycle the strobes act (L,
        # with the counts of L); later counts are invisible until the next snapshot. A read
        # right after the snapshot waits for the counters' sweep, and so does a write.
        ctx.set(dut.status.start_cycle, 77)
        await write(ctx, dut, regmap["control"].addr, CONTROL_SNAPSHOT)
        for _ in range(STROBE_LATENCY - 2):
            await ctx.tick()
        ctx.set(dut.counts.attempts, 1)                 # in L - 1, L and after
        ctx.set(dut.counts.heralds[0], 1)               # in L - 1 only
        await ctx.tick()
        ctx.set(dut.counts.heralds[0], 0)
        await ctx.tick()
        ctx.set(dut.counts.dropped_records, 2)          # after L only
        await write(ctx, dut, regmap["config.period"].addr, 99)
        assert ctx.get(dut.config.period) == 1234
        waited = 0
        while not ctx.get(dut.bus.w_ack):
            await ctx.tick()
            waited += 1
        assert waited >= len(counter_paths(regmap.soc.core))
        await ctx.tick()
        assert ctx.get(dut.config.period) == 99
        addr = regmap["counters.attempts"].addr
        lo, hi = await read(ctx, dut, addr), await read(ctx, dut, addr + 1)
        seen["attempts"] = lo | hi << 32
        assert await read(ctx, dut, regmap["counters.heralds.0"].addr) == 1
        assert await read(ctx, dut, regmap["counters.dropped_records"].addr) == 0
        seen["start"] = await read(ctx, dut, regmap["snapshot.start_cycle"].addr)
        # Write-only and unmapped addresses read 0; read-only ones ignore writes.
        assert await read(ctx, dut, regmap["control"].addr) == 0
        assert await read(ctx, dut, regmap["table"].addr) == 0
        assert await read(ctx, dut, regmap.size + 5) == 0
        assert await read(ctx, dut, 0xFFFF) == 0
        await write(ctx, dut, regmap["id.magic"].addr, 0)
        await write(ctx, dut, regmap["counters.attempts"].addr, 0)
        assert await read(ctx, dut, 0) == MAGIC
        assert await read(ctx, dut, addr) == 2

    run_bank(regmap, bench)
    assert seen == {"attempts": 2, "start": 77}


def register_port(dut, reg):
    """The bank port (a view) that holds or feeds register ``reg``."""
    return field_at(getattr(dut, reg.port), reg.path)


def test_every_snapshot_and_live_word():
    """Each snapshot word holds its own counter or status input, each live word its own
    input."""
    regmap = RegisterMap(SocParameters())
    snap = [r for r in regmap if r.access is Access.SNAPSHOT]
    counters = [r for r in snap if r.port == "counters"]
    status = [r for r in snap if r.port != "counters"]
    live = [r for r in regmap if r.access is Access.RO]

    async def bench(ctx, dut):
        totals = {reg.name: 0 for reg in counters}
        for round_ in range(2):
            values = {}
            for i, reg in enumerate(status + live):
                values[reg.name] = (0x9E37_79B9_7F4A_7C15 * (i + 17 * round_ + 1)) \
                    % (1 << reg.width)
                ctx.set(register_port(dut, reg), values[reg.name])
            # Counter i steps as far as it can for i + 1 + 5 * round cycles: every counter
            # differs from the others.
            steps = [field_at(dut.counts, reg.path) for reg in counters]
            for t in range(len(counters) + 6):
                for i, (reg, step) in enumerate(zip(counters, steps)):
                    top = (1 << len(step)) - 1
                    value = top if t < i + 1 + 5 * round_ else 0
                    ctx.set(step, value)
                    totals[reg.name] += value
                await ctx.tick()
            values.update(totals)
            assert len(set(totals.values())) == len(counters)
            await write(ctx, dut, regmap["control"].addr, CONTROL_SNAPSHOT)
            for _ in range(STROBE_LATENCY):
                await ctx.tick()
            for reg in status + live:
                ctx.set(register_port(dut, reg), 0)     # too late for the snapshot, live reads 0
            for reg, step in zip(counters, steps):     # likewise, for a cycle
                ctx.set(step, 1)
                totals[reg.name] += 1
            await ctx.tick()
            for step in steps:
                ctx.set(step, 0)
            for reg in snap:
                words = [await read(ctx, dut, reg.addr + k) for k in range(reg.words)]
                assert sum(w << (32 * k) for k, w in enumerate(words)) == values[reg.name], \
                    reg.name
            for reg in live:
                assert await read(ctx, dut, reg.addr) == 0, reg.name
                ctx.set(register_port(dut, reg), values[reg.name])
                assert await read(ctx, dut, reg.addr) == values[reg.name], reg.name

    run_bank(regmap, bench)


@pytest.mark.parametrize("bad", [dict(max_burst=0), dict(max_burst=256),
                                 dict(max_records_per_frame=300), dict(clk_freq=0)])
def test_soc_parameters_rejected(bad):
    with pytest.raises(ValueError):
        SocParameters(**bad)


@pytest.mark.parametrize("ecp5", [False, True], ids=["generic", "ecp5"])
def test_writes_reach_the_registers_in_order(ecp5, monkeypatch):
    # Back-to-back writes, several to the same register, to registers of every width and
    # port, then a START: each register holds its last word, masked to its width,
    # WRITE_LATENCY cycles after the write, and the START strobe comes after every earlier
    # write is in place. On the ECP5 the word reaches each register through a copy of its
    # own (the bank's ECP5 logic, in simulation: its block RAM stays the generic one).
    if ecp5:
        monkeypatch.setattr("heraldry.gateware.regbank.is_ecp5", lambda platform: True)
    regmap = RegisterMap(SocParameters())
    rw = [r for r in regmap if r.access is Access.RW]
    writes = [(reg, (0x9E37_79B9 * (i + 1)) & 0xFFFF_FFFF) for i, reg in enumerate(rw)]
    writes += [(rw[0], 0xFFFF_0001), (rw[-1], 0x1234_5678), (rw[0], 77)]

    async def bench(ctx, dut):
        expected = {}
        for t, (reg, value) in enumerate(writes):
            await write(ctx, dut, reg.addr, value)
            expected[reg.name] = value & ((1 << reg.width) - 1)
            if t + 1 >= WRITE_LATENCY:        # the write of WRITE_LATENCY - 1 writes ago
                done, _ = writes[t + 1 - WRITE_LATENCY]
                landed = {r.name: v & ((1 << r.width) - 1)
                          for r, v in writes[:t + 2 - WRITE_LATENCY]}
                assert ctx.get(register_port(dut, done)) == landed[done.name]
                if t + 2 - WRITE_LATENCY < len(writes):     # the next one has not landed
                    pending, _ = writes[t + 2 - WRITE_LATENCY]
                    assert ctx.get(register_port(dut, pending)) == landed.get(pending.name, 0)
        await write(ctx, dut, regmap["control"].addr, CONTROL_START)
        for _ in range(STROBE_LATENCY - 1):
            assert ctx.get(dut.start) == 0
            await ctx.tick()
        assert ctx.get(dut.start) == 1
        for reg in rw:
            assert ctx.get(register_port(dut, reg)) == expected[reg.name], reg.name

    run_bank(regmap, bench)
