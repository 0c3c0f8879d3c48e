"""tcp:// against a loopback server that bridges to the SoC in Amaranth's simulator (the
stand-in for the virtual board): a run over TCP, a link that dies mid-run, reconnecting."""

import socket
import threading

import pytest

from heraldry.gateware.layouts import Reason
from heraldry.gateware.regmap import SocParameters
from heraldry.host import Config, Controller, LinkError
from heraldry.host.simlink import RandomClicks, SimTransport


class SimBridge(threading.Thread):
    """Serves one client at a time on 127.0.0.1; the simulated device keeps running (its
    output discarded) while no client is connected, like a board nobody listens to."""

    def __init__(self, transport):
        super().__init__(daemon=True)
        self.transport = transport
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(0.02)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.sent = 0
        self.drop_at = None          # close the connection once this many bytes were sent
        self.connections = 0

    def run(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                self.transport.run_cycles(2048)
                self.transport.read(0)
                continue
            self.connections += 1
            conn.setblocking(False)
            with conn:
                while not self.stopping:
                    try:
                        data = conn.recv(65536)
                        if not data:
                            break
                        self.transport.write(data)
                    except BlockingIOError:
                        pass
                    out = self.transport.read(0)
                    if self.drop_at is not None and self.sent + len(out) >= self.drop_at:
                        self.drop_at = None
                        break               # the cable is pulled
                    conn.setblocking(True)
                    conn.sendall(out)
                    conn.setblocking(False)
                    self.sent += len(out)
        self.listener.close()


@pytest.fixture(scope="module")
def bridge():
    transport = SimTransport(SocParameters(), RandomClicks(2, 0.05, seed=3))
    server = SimBridge(transport)
    server.start()
    yield server
    server.stopping = True
    server.join(5)


# The server is Amaranth's simulator, a few thousand cycles/s and slower on a busy machine:
# a device that slow needs a longer response timeout than tcp://'s default.
SLOW_SERVER = {"response_timeout": 30.0}


def test_run_over_tcp(bridge):
    url = f"tcp://127.0.0.1:{bridge.port}"
    with Controller.open(url, **SLOW_SERVER) as ctl:
        assert ctl.device.magic == 0x48524C44
        ctl.configure(Config(period_ns=300, windows_ns=[(20, 100)], diagnostic=True))
        result = ctl.run(attempts=40)
        assert result.reason is Reason.MAX_ATTEMPTS and result.attempts == 40
        assert result.link.clean
        assert len(result.records) == result.counters.heralds[0] + result.counters.heralds[
            1] + int((result.records["kind"] == 2).sum()) + 1


def test_link_dies_mid_run_and_reconnect_recovers_totals(bridge):
    url = f"tcp://127.0.0.1:{bridge.port}"
    ctl = Controller.open(url, **SLOW_SERVER)
    ctl.configure(Config(period_ns=300, windows_ns=[(20, 100)], diagnostic=True))
    bridge.drop_at = bridge.sent + 2000         # after the start, within the run
    with pytest.raises(LinkError, match="closed the connection"):
        ctl.run(attempts=300)
    ctl.close()
    # The device ran on. A new connection reads the run's totals from its counters.
    with Controller.open(url, **SLOW_SERVER) as again:
        while again.status().running:
            again.read_events(0.1)
        counters = again.counters()
        assert counters.attempts == 300
        assert again.status().reason is Reason.MAX_ATTEMPTS
    assert bridge.connections >= 3


def test_connection_refused_is_a_link_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LinkError, match="cannot connect"):
        Controller.open(f"tcp://127.0.0.1:{port}")
