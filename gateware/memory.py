"""Block RAM whose read data comes straight from a register: the link's memories.

A DP16KD's data output on the ECP5 settles 5.8 ns after the clock without its output
register (nextpnr, speed grade 6): more than a 200 MHz cycle before any logic. Yosys never
maps to that register, so on the ECP5 :class:`BlockRAM` instantiates DP16KD tiles with
``REGMODE_B = "OUTREG"`` itself (read latency 2). On the iCE40 it instantiates SB_RAM40_4K
tiles: inferred, a read port either gets a register per data bit to emulate a defined
read-during-write or LUTs to emulate the output register's initial value, neither of which
the link needs (latency 1). Elsewhere (simulation) it is an Amaranth ``Memory`` with a
synchronous read port (latency 1).
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["BlockRAM", "read_latency", "is_ecp5", "ecp5_initvals", "ice40_inits"]

#: DP16KD in its 1024 x 18 configuration, the widest with two independent ports.
ECP5_TILE_WIDTH = 18
ECP5_TILE_DEPTH = 1024
#: Words per INITVAL_xx parameter (18 bits each, in 20-bit slots) and parameters per tile.
_INIT_WORDS = 16
_INIT_PARAMS = ECP5_TILE_DEPTH // _INIT_WORDS


#: SB_RAM40_4K in its 256 x 16 configuration.
ICE40_TILE_WIDTH = 16
ICE40_TILE_DEPTH = 256


def _family(platform):
    return str(getattr(platform, "family", "")).lower()


def is_ecp5(platform):
    return _family(platform) == "ecp5"


def is_ice40(platform):
    return _family(platform) == "ice40"


def read_latency(platform, distributed=False):
    """Cycles from ``r_en`` to ``r_data`` on ``platform`` (of a ``distributed`` BlockRAM)."""
    return 2 if is_ecp5(platform) and not distributed else 1


def ecp5_initvals(init, width, tile):
    """``INITVAL_00`` .. ``INITVAL_3F`` of DP16KD ``tile`` (bits ``18 * tile ..``) holding the
    words ``init`` (1024 x 18 layout: word k in slot k % 16 of parameter k // 16)."""
    lo = tile * ECP5_TILE_WIDTH
    mask = (1 << min(ECP5_TILE_WIDTH, width - lo)) - 1
    params = {}
    for index in range(_INIT_PARAMS):
        value = 0
        for slot in range(_INIT_WORDS):
            k = index * _INIT_WORDS + slot
            if k < len(init):
                value |= ((init[k] >> lo) & mask) << (20 * slot)
        params[f"p_INITVAL_{index:02X}"] = Const(value, 20 * _INIT_WORDS)
    return params


def ice40_inits(init, width, tile):
    """``INIT_0`` .. ``INIT_F`` of SB_RAM40_4K ``tile`` (bits ``16 * tile ..``) holding the
    words ``init`` (256 x 16 layout: word k at bits 16 * (k % 16) of parameter k // 16)."""
    lo = tile * ICE40_TILE_WIDTH
    mask = (1 << min(ICE40_TILE_WIDTH, width - lo)) - 1
    params = {}
    for index in range(16):
        value = 0
        for slot in range(16):
            k = index * 16 + slot
            if k < len(init):
                value |= ((init[k] >> lo) & mask) << (ICE40_TILE_WIDTH * slot)
        params[f"p_INIT_{index:X}"] = Const(value, 256)
    return params


class BlockRAM(wiring.Component):
    """Simple dual-port block RAM: one write port, one read port with registered data.

    Parameters
    ----------
    width, depth : int
    init : sequence of int
        Initial contents (the rest is zero).
    read_domain : str
        Clock domain of the read port (the write port is ``sync``); the same clock on a
        board, see :class:`~heraldry.gateware.soc.HeraldSoC` ``link_domain``.
    distributed : bool
        On the ECP5, LUT RAM read asynchronously into a register (read latency 1) instead
        of DP16KD tiles: for small memories whose logic should not be drawn to a block
        RAM's fixed site. Elsewhere no difference.

    Attributes
    ----------
    w_addr, w_data, w_en : In
        Write port: ``w_data`` is stored at ``w_addr`` at the end of a cycle with ``w_en``.
    r_addr, r_en : In
        Read port: a cycle with ``r_en`` reads ``r_addr``.
    r_data : Out(width)
        The word read, :func:`read_latency` cycles after ``r_en``; held until the next read.
        A read of the word being written in the same cycle returns an undefined value.
    r_valid : Out(1)
        High in the cycle ``r_data`` first shows a new word.
    """

    def __init__(self, width, depth, init=(), read_domain="sync", distributed=False):
        if depth < 2:
            raise ValueError(f"BlockRAM depth {depth}: must be at least 2")
        if len(init) > depth:
            raise ValueError(f"BlockRAM init has {len(init)} words; depth is {depth}")
        self.width, self.depth, self.init = width, depth, list(init)
        self.read_domain = read_domain
        self.distributed = distributed
        super().__init__({
            "w_addr": In(range(depth)),
            "w_data": In(width),
            "w_en": In(1),
            "r_addr": In(range(depth)),
            "r_en": In(1),
            "r_data": Out(width),
            "r_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        if is_ecp5(platform) and not self.distributed:
            self._elaborate_ecp5(m)
        elif _family(platform) == "ice40" and self.depth <= ICE40_TILE_DEPTH:
            self._elaborate_ice40(m)
        else:
            # An asynchronous read port and a register, which yosys merges into the block's
            # synchronous port; written so, no_rw_check applies, and yosys does not emulate a
            # defined read of the word being written with a register per data bit.
            attrs = {"no_rw_check": 1}
            if self.distributed:
                attrs["ram_style"] = "distributed"
            m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth,
                                            init=self.init, attrs=attrs)
            write = mem.write_port()
            read = mem.read_port(domain="comb")
            m.d.comb += [
                write.addr.eq(self.w_addr), write.data.eq(self.w_data),
                write.en.eq(self.w_en),
                read.addr.eq(self.r_addr),
            ]
            # Reset-less, like the block's own output register.
            data = Signal(self.width, reset_less=True)
            m.d.comb += self.r_data.eq(data)
            with m.If(self.r_en):
                m.d[self.read_domain] += data.eq(read.data)
            m.d[self.read_domain] += self.r_valid.eq(self.r_en)
        return m

    def _tiles(self, m, tile_width, in_suffix, out_suffix):
        """The block's width cut into tiles of ``tile_width`` bits: for each, its number and
        full-width write and read data signals, wired to their slice of the ports."""
        for tile in range(-(-self.width // tile_width)):
            lo = tile * tile_width
            bits = min(tile_width, self.width - lo)
            data_in = Signal(tile_width, name=f"tile{tile}_{in_suffix}")
            data_out = Signal(tile_width, name=f"tile{tile}_{out_suffix}")
            m.d.comb += [data_in.eq(self.w_data[lo:lo + bits]),
                         self.r_data[lo:lo + bits].eq(data_out[:bits])]
            yield tile, data_in, data_out

    def _elaborate_ecp5(self, m):
        if self.depth > ECP5_TILE_DEPTH:
            raise ValueError(f"BlockRAM depth {self.depth} on the ECP5: the limit is "
                             f"{ECP5_TILE_DEPTH} (one DP16KD deep)")
        # The array is read in the cycle of r_en, the output register loads one cycle later.
        array_read = Signal()
        m.d[self.read_domain] += [array_read.eq(self.r_en), self.r_valid.eq(array_read)]
        abits = len(self.w_addr)
        for tile, data_in, data_out in self._tiles(m, ECP5_TILE_WIDTH, "di", "do"):
            ports = {}
            # At 18 bits wide the row address is AD[13:4]; on port A, AD[1:0] are the two
            # byte-write enables.
            for i in range(14):
                row_bit = i - 4
                ports[f"i_ADA{i}"] = (self.w_addr[row_bit] if 0 <= row_bit < abits
                                      else int(i < 2))
                ports[f"i_ADB{i}"] = self.r_addr[row_bit] if 0 <= row_bit < abits else 0
            for i in range(ECP5_TILE_WIDTH):
                ports[f"i_DIA{i}"] = data_in[i]
                ports[f"i_DIB{i}"] = 0
                ports[f"o_DOB{i}"] = data_out[i]
            m.submodules[f"tile{tile}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=ECP5_TILE_WIDTH, p_DATA_WIDTH_B=ECP5_TILE_WIDTH,
                p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_GSR="DISABLED",
                **ecp5_initvals(self.init, self.width, tile),
                i_CLKA=ClockSignal("sync"), i_CEA=1, i_OCEA=1, i_WEA=self.w_en, i_RSTA=0,
                i_CSA0=0, i_CSA1=0, i_CSA2=0,
                i_CLKB=ClockSignal(self.read_domain), i_CEB=self.r_en, i_OCEB=array_read,
                i_WEB=0,
                i_RSTB=0, i_CSB0=0, i_CSB1=0, i_CSB2=0,
                **ports)

    def _elaborate_ice40(self, m):
        m.d[self.read_domain] += self.r_valid.eq(self.r_en)
        abits = len(self.w_addr)
        for tile, data_in, data_out in self._tiles(m, ICE40_TILE_WIDTH, "wdata", "rdata"):
            m.submodules[f"tile{tile}"] = Instance(
                "SB_RAM40_4K",
                p_READ_MODE=0, p_WRITE_MODE=0,
                **ice40_inits(self.init, self.width, tile),
                i_RCLK=ClockSignal(self.read_domain), i_RCLKE=self.r_en, i_RE=1,
                i_RADDR=Cat(self.r_addr, Const(0, 11 - abits)),
                o_RDATA=data_out,
                i_WCLK=ClockSignal("sync"), i_WCLKE=self.w_en, i_WE=1,
                i_WADDR=Cat(self.w_addr, Const(0, 11 - abits)),
                i_MASK=0, i_WDATA=data_in)
