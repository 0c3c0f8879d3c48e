"""``heraldry info`` and ``heraldry regmap``."""

import argparse

from heraldry.host import cli_device


def run(argv):
    parser = argparse.ArgumentParser()
    cli_device.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_info_sim(capsys):
    assert run(["info", "sim://?channels=4&windows=1"]) == 0
    out = capsys.readouterr().out
    assert "100 MHz, 4 channels, 1 windows" in out
    assert "running=False" in out
    assert "link.rx_crc_errors = 0" in out


def test_regmap(capsys):
    assert run(["regmap", "--clk", "48e6"]) == 0
    out = capsys.readouterr().out
    assert "| 0x005 | `id.clk_freq` | 32 | const | 0x2dc6c00 |" in out
    assert "`counters.attempts`" in out
