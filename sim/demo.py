"""``heraldry demo``: remote entanglement heralded on the virtual board, live.

Builds the virtual board (the whole SoC Verilated, cached after the first build), programs
its link emulator from the physics model of a single-click (or Barrett-Kok) link with
parameters like those of Humphreys et al. 2018, runs until the requested number of heralds
or a wall-clock cap, shows live progress, compares the measured success probability and
rate with the model, and writes a results folder (records as .npz, PNG plots, summary).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "run_demo"]

# Humphreys et al. 2018 (see sim/experiments.json): alpha 0.15, detection efficiency
# 3.6e-4 per node, 20 Hz dark counts, 40 ns window, V = 0.9, double excitation 0.04.
# The demo's defaults raise eta and shorten the attempt so that a simulated run reaches
# ~200 heralds in about a minute; pass --eta 3.552e-4 --period-ns 4000 for the lab's values.
DEFAULTS = dict(alpha=0.15, eta=0.01, dark_hz=20.0, period_ns=1000.0, window_ns=40.0,
                window_start_ns=200.0, visibility=0.9, p_double=0.04, phase_noise=0.25)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help="herald entanglement on the virtual board, live",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=("single-click", "barrett-kok"),
                        default="single-click")
    parser.add_argument("--alpha", type=float, default=DEFAULTS["alpha"],
                        help="bright-state population of each node (default %(default)s)")
    parser.add_argument("--eta", type=float, default=DEFAULTS["eta"],
                        help="detection efficiency of each node's photon (default "
                             "%(default)s; Humphreys 2018: 3.552e-4)")
    parser.add_argument("--dark-hz", type=float, default=DEFAULTS["dark_hz"],
                        help="dark-count rate per detector (default %(default)s)")
    parser.add_argument("--visibility", type=float, default=DEFAULTS["visibility"])
    parser.add_argument("--period-ns", type=float, default=DEFAULTS["period_ns"],
                        help="attempt period (default %(default)s)")
    parser.add_argument("--window-ns", type=float, default=DEFAULTS["window_ns"],
                        help="detection window length (default %(default)s)")
    parser.add_argument("--heralds", type=int, default=200, help="stop after this many")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="wall-clock cap of the run (default %(default)s)")
    parser.add_argument("--seed", type=int, default=2018, help="emulator seed")
    parser.add_argument("--out", default="results/demo", help="results folder")
    parser.add_argument("--url", default="verilator://",
                        help="device to use (default: the virtual board)")
    parser.set_defaults(handler=run_demo)


def _link(args, clk_freq):
    from . import physics
    window_s = args.window_ns * 1e-9
    dark = float(physics.dark_probability(args.dark_hz, window_s))
    return physics.LinkParameters(
        protocol=args.protocol, alpha=(args.alpha, args.alpha), eta=(args.eta, args.eta),
        p_dark=(dark, dark), p_double=DEFAULTS["p_double"], visibility=args.visibility,
        phase_noise=DEFAULTS["phase_noise"])


class _Progress:
    """One status line, rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self):
        self.tty = sys.stdout.isatty()
        self.last = 0.0

    def show(self, text, final=False):
        now = time.monotonic()
        if self.tty:
            print("\r" + text.ljust(110), end="\n" if final else "", flush=True)
        elif final or now - self.last >= 5.0:
            print(text, flush=True)
            self.last = now


def run_demo(args) -> int:
    from ..host.config import Config
    from ..host.controller import Controller
    from ..host.emulator import settings_from_physics
    from ..host.records import record_dtype
    from ..host.results import save_records, wilson_interval
    from . import physics

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"heraldry demo: {args.protocol} link, alpha={args.alpha}, eta={args.eta}, "
          f"dark {args.dark_hz:g} Hz, window {args.window_ns:g} ns, "
          f"attempts every {args.period_ns:g} ns")
    print(f"opening {args.url} (the first run builds the virtual board: about a minute) ...",
          flush=True)
    t_open = time.monotonic()
    with Controller.open(args.url) as dev:
        info = dev.device
        clk = info.clk_freq
        print(f"device: {info.summary()} ({time.monotonic() - t_open:.1f} s)")
        link = _link(args, clk)
        n_windows = 2 if args.protocol == "barrett-kok" else 1
        starts = [DEFAULTS["window_start_ns"] + w * args.period_ns / 2
                  for w in range(n_windows)]
        config = Config(period_ns=args.period_ns,
                        windows_ns=[(s, args.window_ns) for s in starts],
                        protocol=args.protocol, diagnostic=True)
        dev.configure(config)
        emulator = settings_from_physics(link, clk, starts, args.window_ns, seed=args.seed)
        dev.configure_emulator(emulator)
        p_model = physics.p_herald(link)
        period_s = dev.core_config.period / clk
        print(f"model: P(herald) = {p_model:.4g} per attempt, rate {p_model / period_s:.4g} /s "
              f"(device time)")

        records = []
        progress = _Progress()
        dev.start()
        started = time.monotonic()
        stop_sent = False
        while True:
            batch = dev.read_events(0.25)
            if len(batch):
                records.append(batch)
            counters = dev.counters()
            heralds, attempts = sum(counters.heralds), counters.attempts
            elapsed = time.monotonic() - started
            device_s = counters.cycles / clk
            if attempts:
                p = heralds / attempts
                lo, hi = wilson_interval(heralds, attempts)
                progress.show(f"  {elapsed:6.1f} s  attempts {attempts:>9d}  heralds "
                              f"{heralds:>4d}  rate {heralds / max(device_s, 1e-12):8.1f} /s  "
                              f"p {p:.3e} [{lo:.2e}, {hi:.2e}]  drops "
                              f"{counters.dropped_records + dev.seq_gaps}")
            if not stop_sent and (heralds >= args.heralds or elapsed >= args.max_seconds):
                dev.stop()
                stop_sent = True
            elif stop_sent and not dev.status().running:
                break
        for _ in range(5):
            batch = dev.read_events(0.2)
            if len(batch):
                records.append(batch)
        counters = dev.counters()
        progress.show(f"  stopped after {time.monotonic() - started:.1f} s", final=True)
        records = np.concatenate(records) if records else np.empty(
            0, record_dtype(info.core_params))
        heralds, attempts = sum(counters.heralds), counters.attempts
        device_s = counters.cycles / clk
        p = heralds / attempts if attempts else float("nan")
        lo, hi = wilson_interval(heralds, attempts)
        sigma = math.sqrt(p_model * (1 - p_model) / attempts) if attempts else float("inf")
        z = (p - p_model) / sigma if sigma else float("inf")
        rate = heralds / device_s if device_s else 0.0
        summary = {
            "protocol": args.protocol, "attempts": attempts, "heralds": heralds,
            "outcomes": {str(o + 1): n for o, n in enumerate(counters.heralds)},
            "p_measured": p, "p_interval_95": [lo, hi], "p_model": p_model, "z": z,
            "rate_measured_hz": rate, "rate_model_hz": p_model / period_s,
            "device_seconds": device_s, "wall_seconds": time.monotonic() - t_open,
            "dropped_records": counters.dropped_records, "sequence_gaps": dev.seq_gaps,
            "agrees": abs(z) < 3,
        }
        save_records(out / "records.npz", records, config=config, device=info,
                     table=dev.table, counters=counters,
                     extra={"emulator_seed": args.seed, "summary": summary})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plots(out, records, summary, dev.core_config, clk)
    print("\nsummary")
    print(f"  attempts {attempts}, heralds {heralds} "
          f"(outcomes {summary['outcomes']}), device time {device_s * 1e3:.2f} ms")
    print(f"  success probability {p:.4e}  (95 % CI [{lo:.3e}, {hi:.3e}])  "
          f"model {p_model:.4e}  ->  {z:+.2f} sigma: "
          f"{'agrees within statistical error' if summary['agrees'] else 'DISAGREES'}")
    print(f"  rate {rate:.2f} /s in device time, model {p_model / period_s:.2f} /s")
    print(f"  dropped records {counters.dropped_records}, sequence gaps {dev.seq_gaps}")
    print(f"  results: {out}/records.npz, summary.json, attempts_until_herald.png, "
          f"outcomes.png, arrival_times.png")
    return 0 if summary["agrees"] else 1


def _plots(out, records, summary, core_config, clk):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..gateware.layouts import RecordKind

    heralds = records[records["kind"] == RecordKind.HERALD.value]
    # Attempts until herald, with the geometric distribution of the measured p.
    fig, ax = plt.subplots(figsize=(6, 4))
    index = np.sort(heralds["attempt"].astype(np.int64))
    waits = np.diff(np.concatenate(([-1], index)))
    if len(waits):
        p = summary["p_measured"]
        bins = np.linspace(0, max(waits.max(), 1), 30)
        ax.hist(waits, bins=bins, label=f"measured ({len(waits)} heralds)")
        centres = (bins[:-1] + bins[1:]) / 2
        width = bins[1] - bins[0]
        ax.plot(centres, len(waits) * width * p * (1 - p) ** (centres - 1), "r-",
                label=f"geometric fit, p = {p:.3g}")
        ax.legend()
    ax.set_xlabel("attempts until herald")
    ax.set_ylabel("heralds")
    fig.tight_layout()
    fig.savefig(out / "attempts_until_herald.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    outcomes = summary["outcomes"]
    names = {"1": "Psi+", "2": "Psi-", "3": "3"}
    ax.bar([names.get(k, k) for k in outcomes], list(outcomes.values()))
    ax.set_ylabel("heralds")
    ax.set_title("outcomes")
    fig.tight_layout()
    fig.savefig(out / "outcomes.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    data = records[records["kind"] != RecordKind.END.value]
    offsets = []
    for w, (start, length) in enumerate(core_config.windows):
        if length:
            cls, first = data["cls"][:, w, :], data["first"][:, w, :]
            offsets.append(first[cls > 0].astype(np.int64))
            ax.axvspan(start / clk * 1e9, (start + length) / clk * 1e9, alpha=0.15)
    offsets = np.concatenate(offsets) if offsets else np.empty(0, np.int64)
    if len(offsets):
        edges = np.arange(offsets.min(), offsets.max() + 2) / clk * 1e9
        ax.hist(offsets / clk * 1e9, bins=edges)
    ax.set_xlabel("first click after the attempt strobe (ns)")
    ax.set_ylabel("clicks")
    fig.tight_layout()
    fig.savefig(out / "arrival_times.png", dpi=100)
    plt.close(fig)
