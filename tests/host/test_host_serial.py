"""serial:// through a pseudo-terminal bridged to the SoC in Amaranth's simulator (the
byte stream a USB-serial adapter would carry)."""

import os
import select
import threading

import pytest

pytest.importorskip("serial")

from heraldry.gateware.regmap import SocParameters  # noqa: E402
from heraldry.host import Config, Controller, LinkError  # noqa: E402
from heraldry.host.simlink import RandomClicks, SimTransport  # noqa: E402


def test_run_over_a_serial_port():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    transport = SimTransport(SocParameters(), RandomClicks(2, 0.05, seed=2))
    stop = threading.Event()

    def bridge():
        while not stop.is_set():
            readable, _, _ = select.select([master], [], [], 0)
            if readable:
                transport.write(os.read(master, 4096))
            out = transport.read(0)
            if out:
                os.write(master, out)

    thread = threading.Thread(target=bridge, daemon=True)
    thread.start()
    try:
        with Controller.open(f"serial://{path}?baud=3000000") as ctl:
            assert ctl.transport.url == f"serial://{path}?baud=3000000"
            ctl.configure(Config(period_ns=300, windows_ns=[(20, 100)], diagnostic=True))
            result = ctl.run(attempts=20)
            assert result.attempts == 20 and result.link.clean
            assert result.records["kind"][-1] == 3
    finally:
        stop.set()
        thread.join(5)
        os.close(master)
        os.close(slave)


def test_missing_port_is_a_link_error():
    with pytest.raises(LinkError, match="cannot open"):
        Controller.open("serial:///dev/does-not-exist?baud=3000000")
