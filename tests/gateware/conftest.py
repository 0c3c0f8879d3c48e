"""Fixtures shared by the gateware tests."""

import json
import subprocess

import pytest


class _ECP5:
    """As much of an ECP5 platform as the components that pick primitives by family read."""
    family = "ecp5"


@pytest.fixture
def synth_ecp5(tmp_path):
    """A function that synthesises a component for the ECP5 with the pip toolchain's yosys
    (``synth_ecp5``) and returns the netlist's top module as yosys writes it in JSON."""
    from amaranth.back import rtlil

    from heraldry.boards.build import tool_env

    def synth(component):
        env = tool_env()
        (tmp_path / "top.il").write_text(rtlil.convert(component, platform=_ECP5()))
        subprocess.run([env["YOSYS"], "-q", "-p",
                        "read_rtlil top.il; synth_ecp5 -top top; write_json top.json"],
                       cwd=tmp_path, env=env, check=True)
        return json.loads((tmp_path / "top.json").read_text())["modules"]["top"]

    return synth
