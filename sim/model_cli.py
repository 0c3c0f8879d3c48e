"""``heraldry model``: what the physics predicts for a link, as numbers and plots.

Subcommands
-----------
``predict``
    P(herald), heralded fidelity, rate and (with a deadline) deterministic delivery for a
    published parameter set (``--experiment``) with any parameter overridden.
``plot``
    PNGs of rate and fidelity against the bright-state population alpha, and of the
    deterministic-delivery curve.
``compare``
    Published figures beside the model's numbers (``sim/experiments.json``).

Standalone: ``python -m heraldry.sim.model_cli plot --out /tmp/x``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from . import physics as ph

__all__ = ["add_parser", "add_model_parser", "configure_parser", "run_model_command", "main"]

DEFAULT_EXPERIMENT = {ph.SINGLE_CLICK: "humphreys2018", ph.BARRETT_KOK: "hensen2015"}


def _common(p):
    p.add_argument("--protocol", choices=ph.PROTOCOLS, default=None,
                   help="heralding scheme (default: the experiment's, else single-click)")
    p.add_argument("--experiment", default=None,
                   help="parameter set from experiments.json (default: humphreys2018 for "
                        "single-click, hensen2015 for barrett-kok)")


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``predict``/``plot``/``compare`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    pr = sub.add_parser("predict", help="print P(herald), fidelity, rate and delivery")
    _common(pr)
    pr.add_argument("--alpha", type=float, nargs="+", help="bright-state population (A [B])")
    pr.add_argument("--eta", type=float, nargs="+", help="detection probability (A [B])")
    pr.add_argument("--p-dark", type=float, nargs="+",
                    help="dark-click probability per window (detector 0 [1])")
    pr.add_argument("--p-double", type=float, help="double-excitation probability")
    pr.add_argument("--visibility", type=float, help="two-photon visibility V")
    pr.add_argument("--phase-noise", type=float, help="optical phase noise sigma (rad)")
    pr.add_argument("--attempt-duration", type=float, help="attempt period (s)")
    pr.add_argument("--batch-length", type=int, help="attempts per batch")
    pr.add_argument("--batch-pause", type=float, help="pause after each batch (s)")
    pr.add_argument("--recal-interval", type=float, help="attempting time between "
                                                          "recalibrations (s)")
    pr.add_argument("--recal-duration", type=float, help="recalibration duration (s)")
    pr.add_argument("--t2", type=float, help="1/e time of the stored state's coherence (s)")
    pr.add_argument("--deadline", type=int, help="deterministic-delivery deadline (attempts)")
    pr.add_argument("--f-unentangled", type=float, help="fidelity of the fallback state")
    pr.add_argument("--json", action="store_true", help="print JSON")

    pl = sub.add_parser("plot", help="write PNGs of rate/fidelity vs alpha and of delivery")
    _common(pl)
    pl.add_argument("--out", default=".", help="output directory (created if missing)")
    pl.add_argument("--points", type=int, default=120, help="alpha samples per curve")

    co = sub.add_parser("compare", help="published figures beside the model")
    co.add_argument("--experiment", default=None, help="one experiment (default: all)")
    co.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.set_defaults(handler=run_model_command, func=run_model_command)
    return parser


def add_model_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``model`` subcommand on the ``heraldry`` CLI's ``subparsers``."""
    parser = subparsers.add_parser(
        "model", help="physics model: predictions, plots, published numbers",
        description=__doc__.split("\n\n")[0])
    return configure_parser(parser)


#: The name :mod:`heraldry.host.cli` looks for.
add_parser = add_model_parser


def _scenario(args, need_deadline=False):
    """``(name, link, timing, memory, deadline, f_unentangled)`` for the arguments;
    ``deadline`` is ``None`` unless the experiment or the arguments give one or
    ``need_deadline`` asks for a default."""
    data = ph.load_experiments()
    name = args.experiment or DEFAULT_EXPERIMENT[args.protocol or ph.SINGLE_CLICK]
    if name not in data["experiments"]:
        raise SystemExit(f"unknown experiment {name!r}; known: {', '.join(data['experiments'])}")
    exp = ph.experiment(name, data)
    if exp.link is None:
        raise SystemExit(f"{name} is a deterministic direct-transfer experiment; the heralding "
                         "model does not apply (see `heraldry model compare`)")
    link = exp.link.replace(protocol=args.protocol or exp.protocol)
    timing, memory = exp.timing, exp.memory
    deadline, f_unent = exp.deadline, exp.f_unentangled
    get = lambda key: getattr(args, key, None)  # noqa: E731 - plot has no overrides
    changes = {k: (v if len(v) > 1 else v[0]) for k, v in
               (("alpha", get("alpha")), ("eta", get("eta")), ("p_dark", get("p_dark")))
               if v is not None}
    changes.update({k: get(a) for k, a in (("p_double", "p_double"),
                                           ("visibility", "visibility"),
                                           ("phase_noise", "phase_noise"))
                    if get(a) is not None})
    link = link.replace(**changes)
    t_changes = {k: get(a) for k, a in (("attempt_duration", "attempt_duration"),
                                        ("batch_length", "batch_length"),
                                        ("batch_pause", "batch_pause"),
                                        ("recalibration_interval", "recal_interval"),
                                        ("recalibration_duration", "recal_duration"))
                 if get(a) is not None}
    if t_changes:
        timing = ph.Timing(**{**timing.__dict__, **t_changes})
    if get("t2") is not None:
        memory = ph.Memory(t2=get("t2"), dephasing_per_attempt=memory.dephasing_per_attempt)
    deadline = get("deadline") or deadline
    if deadline is None and need_deadline:
        # No deterministic delivery in the experiment: pick the deadline at which a herald
        # comes with probability 95 %, so the curve shows the trade-off.
        deadline = max(1, math.ceil(math.log(0.05) / math.log1p(-ph.p_herald(link))))
    f_unent = get("f_unentangled") if get("f_unentangled") is not None else f_unent
    return name, link, timing, memory, deadline, f_unent


def _predict(args) -> int:
    name, link, timing, memory, deadline, f_unent = _scenario(args)
    outcomes = ph.herald_outcomes(link)
    probs = ph.outcome_probabilities(link)
    result = {
        "experiment": name, "protocol": link.protocol,
        "parameters": {"alpha": link.alpha, "eta": link.eta, "p_dark": link.p_dark,
                       "p_double": link.p_double, "visibility": link.visibility,
                       "phase_noise": link.phase_noise},
        "p_herald": ph.p_herald(link),
        "fidelity": ph.fidelity(link),
        "outcomes": [{"detectors": list(d), "target": "Psi+" if s > 0 else "Psi-",
                      "probability": float(p), "fidelity": ph.fidelity(link, k)}
                     for k, ((d, s), p) in enumerate(zip(outcomes, probs))],
        "mean_attempt_time_s": ph.mean_attempt_time(timing),
        "rate_hz": ph.rate(link, timing),
    }
    if deadline:
        delivery = ph.deterministic_delivery(link, timing, memory, deadline, f_unent)
        bounds = (1e-4, 0.5) if link.protocol == ph.SINGLE_CLICK else (0.01, 0.99)
        best_alpha, best = ph.optimal_alpha(link, timing, memory, deadline, f_unent, bounds)
        result["delivery"] = {"deadline_attempts": deadline, "t2_s": memory.t2,
                              "p_success": delivery.p_success,
                              "f_success": delivery.f_success,
                              "f_delivered": delivery.f_delivered,
                              "optimal_alpha": best_alpha,
                              "f_delivered_at_optimum": best.f_delivered}
    if args.json:
        print(json.dumps(result, indent=2, default=float))
        return 0
    print(f"{name} ({link.protocol})")
    print(f"  alpha={link.alpha} eta={tuple(f'{e:.4g}' for e in link.eta)} "
          f"p_dark={tuple(f'{p:.3g}' for p in link.p_dark)} p_double={link.p_double} "
          f"V={link.visibility} sigma_phi={link.phase_noise}")
    print(f"  P(herald)      {result['p_herald']:.6g} per attempt")
    for o in result["outcomes"]:
        print(f"    detectors {o['detectors']} -> {o['target']}: P={o['probability']:.4g} "
              f"F={o['fidelity']:.4f}")
    print(f"  fidelity       {result['fidelity']:.4f}")
    print(f"  attempt time   {result['mean_attempt_time_s'] * 1e6:.4g} us (overheads included)")
    print(f"  rate           {result['rate_hz']:.4g} /s")
    if deadline:
        d = result["delivery"]
        print(f"  delivery       deadline {deadline} attempts, T2 {memory.t2:.3g} s: "
              f"P(success)={d['p_success']:.4f} F_succ={d['f_success']:.4f} "
              f"F_det={d['f_delivered']:.4f}")
        print(f"  optimal alpha  {d['optimal_alpha']:.4f} -> F_det={d['f_delivered_at_optimum']:.4f}")
    return 0


def _plot(args) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, link, timing, memory, deadline, f_unent = _scenario(args, need_deadline=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lo, hi = (1e-3, 0.5) if link.protocol == ph.SINGLE_CLICK else (0.01, 0.99)
    alphas = np.linspace(lo, hi, max(args.points, 8))
    links = [link.replace(alpha=a) for a in alphas]
    p = np.array([ph.p_herald(lk) for lk in links])
    fid = np.array([ph.fidelity(lk) for lk in links])
    rates = np.array([ph.rate(x, timing) for x in p])
    stem = f"{name}_{link.protocol}"
    title = f"{name}, {link.protocol}"

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(alphas, rates, color="tab:blue")
    ax.set_xlabel(r"bright-state population $\alpha$")
    ax.set_ylabel("entanglement rate (1/s)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(alphas, fid, color="tab:red")
    ax2.set_ylabel("heralded fidelity", color="tab:red")
    ax.set_title(f"{title}: rate and fidelity vs alpha")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    first = out / f"{stem}_rate_fidelity.png"
    fig.savefig(first, dpi=110)
    plt.close(fig)

    deliveries = [ph.deterministic_delivery(lk, timing, memory, deadline, f_unent)
                  for lk in links]
    best_alpha, best = ph.optimal_alpha(link, timing, memory, deadline, f_unent, (lo, hi))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    a1.plot(alphas, [d.f_delivered for d in deliveries], label=r"$F_{det}$")
    a1.plot(alphas, [d.f_success for d in deliveries], "--", label=r"$F_{succ}$ at deadline")
    a1.plot(alphas, [d.p_success for d in deliveries], ":", label="P(herald before deadline)")
    a1.axvline(best_alpha, color="grey", lw=0.8)
    a1.plot([best_alpha], [best.f_delivered], "o", color="k",
            label=rf"optimum $\alpha$={best_alpha:.3f}, $F_{{det}}$={best.f_delivered:.3f}")
    a1.axhline(0.5, color="grey", lw=0.5)
    a1.set_xlabel(r"$\alpha$")
    a1.set_title(f"deadline {deadline} attempts, T2 = {memory.t2:.3g} s")
    a1.legend(fontsize=8)
    a1.grid(alpha=0.3)
    best_link = link.replace(alpha=best_alpha)
    horizon = max(int(5 / max(ph.p_herald(best_link), 1e-300)), 2 * deadline)
    horizon = min(horizon, 10 ** 9)
    n = np.unique(np.geomspace(1, horizon, 200).astype(np.int64))
    a2.plot(n, [ph.deterministic_delivery(best_link, timing, memory, int(k),
                                          f_unent).f_delivered for k in n], label=r"$F_{det}$")
    a2.plot(n, [ph.p_before_deadline(ph.p_herald(best_link), int(k)) for k in n], ":",
            label="P(herald before deadline)")
    a2.axvline(deadline, color="grey", lw=0.8)
    a2.set_xscale("log")
    a2.set_xlabel(rf"deadline (attempts), $\alpha$={best_alpha:.3f}")
    a2.set_title("deterministic delivery vs deadline")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    second = out / f"{stem}_delivery.png"
    fig.savefig(second, dpi=110)
    plt.close(fig)
    for path in (first, second):
        print(path)
    return 0


def _fmt(x):
    return f"{x:.4g}"


def _compare(args) -> int:
    rows = ph.compare_published(args.experiment)
    if args.markdown:
        print("| experiment | published figure | published | model (nominal) | model range "
              "| check | result |")
        print("|---|---|---|---|---|---|---|")
    for r in rows:
        verdict = {True: "pass", False: "FAIL", None: "not judged"}[r.passed]
        pub = _fmt(r.published) + (f" ± {_fmt(r.uncertainty)}" if r.uncertainty else "")
        rng = f"[{_fmt(r.model_low)}, {_fmt(r.model_high)}]"
        if args.markdown:
            print(f"| {r.experiment} | {r.figure} | {pub} | {_fmt(r.model)} | {rng} | "
                  f"{r.check} | {verdict} |")
        else:
            print(f"{r.experiment:15s} {r.figure}\n    published {pub}  model {_fmt(r.model)} "
                  f"{rng}  [{r.check}: {verdict}]")
            if r.missing:
                print(f"    missing: {'; '.join(r.missing)}")
            if r.note:
                print(f"    note: {r.note}")
    return 1 if any(r.passed is False for r in rows) else 0


def run_model_command(args) -> int:
    """Run a parsed ``model`` command; returns the process exit status."""
    action = {"predict": _predict, "plot": _plot, "compare": _compare}[args.model_command]
    return action(args)


def main(argv=None) -> int:
    """Standalone entry point: ``python -m heraldry.sim.model_cli ACTION ...``."""
    parser = configure_parser(argparse.ArgumentParser(
        prog="heraldry model", description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    return run_model_command(args)


if __name__ == "__main__":
    sys.exit(main())
