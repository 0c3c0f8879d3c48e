"""The ``heraldry model`` command: plots are valid PNGs, predictions match the physics."""

import argparse
import json

import pytest

from heraldry.sim import model_cli
from heraldry.sim import physics as ph

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000
    # IHDR first, IEND last: a complete file.
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"


@pytest.mark.parametrize("protocol", ph.PROTOCOLS)
def test_plot_writes_pngs(tmp_path, protocol, capsys):
    out = tmp_path / "plots"
    assert model_cli.main(["plot", "--protocol", protocol, "--out", str(out),
                           "--points", "24"]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2
    assert {p.name.split("_")[-1] for p in pngs} == {"fidelity.png", "delivery.png"}
    for p in pngs:
        _assert_png(p)
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(p) for p in pngs)


def test_plot_with_experiment(tmp_path):
    assert model_cli.main(["plot", "--experiment", "stephenson2020", "--out", str(tmp_path),
                           "--points", "16"]) == 0
    assert len(list(tmp_path.glob("stephenson2020_barrett-kok_*.png"))) == 2


def test_plot_rejects_direct_transfer(tmp_path):
    with pytest.raises(SystemExit):
        model_cli.main(["plot", "--experiment", "kurpiers2018", "--out", str(tmp_path)])


def test_predict_json_matches_physics(capsys):
    assert model_cli.main(["predict", "--alpha", "0.2", "--eta", "1e-3", "2e-3",
                           "--visibility", "0.8", "--attempt-duration", "5e-6",
                           "--deadline", "1000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    exp = ph.experiment("humphreys2018")
    link = exp.link.replace(alpha=0.2, eta=(1e-3, 2e-3), visibility=0.8)
    assert result["p_herald"] == pytest.approx(ph.p_herald(link), rel=1e-12)
    assert result["fidelity"] == pytest.approx(ph.fidelity(link), rel=1e-12)
    timing = ph.Timing(**{**exp.timing.__dict__, "attempt_duration": 5e-6})
    assert result["rate_hz"] == pytest.approx(ph.rate(link, timing), rel=1e-12)
    d = ph.deterministic_delivery(link, timing, exp.memory, 1000)
    assert result["delivery"]["f_delivered"] == pytest.approx(d.f_delivered, rel=1e-12)


def test_predict_text(capsys):
    assert model_cli.main(["predict", "--protocol", "barrett-kok"]) == 0
    out = capsys.readouterr().out
    assert "hensen2015 (barrett-kok)" in out and "P(herald)" in out and "rate" in out


def test_compare(capsys):
    assert model_cli.main(["compare", "--markdown"]) == 0
    out = capsys.readouterr().out
    for name in ("humphreys2018", "stephenson2020", "hensen2015", "kurpiers2018"):
        assert name in out
    assert "FAIL" not in out


def test_registers_on_a_parent_parser(capsys):
    parser = argparse.ArgumentParser(prog="heraldry")
    sub = parser.add_subparsers(dest="command", required=True)
    model_cli.add_parser(sub)
    args = parser.parse_args(["model", "predict", "--json"])
    assert args.handler(args) == 0
    assert model_cli.run_model_command(args) == 0
    assert json.loads(capsys.readouterr().out.split("\n}\n")[0] + "\n}")["protocol"] == \
        "single-click"


def test_heraldry_cli_dispatches_model(capsys):
    """Through the project's entry point."""
    from heraldry.host import cli
    assert cli.main(["model", "compare"]) == 0
    assert "hensen2015" in capsys.readouterr().out
