"""Command line: python -m analysis simulate | sweep | dataset | tune | evaluate | invert."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .dataset import DatasetError
from .evaluation import BEST, MODELS
from .finder import InputError
from .kinetics import Recipe, RecipeError


def _simulate(args: argparse.Namespace) -> int:
    from .simulation import simulate

    recipe = Recipe(args.cba0, args.caibn0, args.temp)
    run = simulate(recipe, args.engine, **({"seed": args.seed} if args.engine == "kmc" else {}))
    if args.json:
        json.dump(run.to_dict(), sys.stdout)
        print()
        return 0
    print(f"# {args.engine} run: cBA_0={recipe.cBA_0} mol/L, cAIBN_0={recipe.cAIBN_0} mol/L, "
          f"temp={recipe.temp} °C; stopped at 90 % conversion: {run.stopped}")
    print("# columns: time_s conversion cBA_time_mol_L Mn_g_mol Mw_g_mol MMD1..MMD100 (w(log M))")
    for i, t in enumerate(run.time):
        head = f"{t:.1f} {run.conversion[i]:.5f} {run.cBA[i]:.5f} {run.Mn[i]:.1f} {run.Mw[i]:.1f}"
        print(head + " " + " ".join(f"{v:.5g}" for v in run.mmd[i]))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm

    from .simulation import design, simulate

    rows = []
    start = time.perf_counter()
    for i, recipe in enumerate(tqdm(design(), desc=f"{args.engine} sweep", disable=args.quiet)):
        opts = {"with_mmd": False} if args.engine == "ode" else {"seed": args.seed + i}
        run = simulate(recipe, args.engine, **opts)
        rows.append({"temp": recipe.temp, "cBA_0": recipe.cBA_0, "cAIBN_0": recipe.cAIBN_0,
                     "conversion_3600": run.conversion[-1], "t_stop": run.t_stop,
                     "Mn": run.Mn[-1], "Mw": run.Mw[-1]})
    pd.DataFrame(rows).to_csv(args.out, index=False)
    n_stop = sum(r["t_stop"] < 3600 for r in rows)
    print(f"{len(rows)} recipes in {time.perf_counter() - start:.1f} s; {n_stop} reach 90 % "
          f"conversion before 3600 s; written to {args.out}", file=sys.stderr)
    return 0


def _dataset(args: argparse.Namespace) -> int:
    from .dataset import generate, write_workbook

    start = time.perf_counter()
    frame = generate(args.engine, jobs=args.jobs, seed=args.seed, progress=not args.quiet)
    write_workbook(frame, args.out)
    print(f"{len(frame)} rows from {frame['recipe_id'].nunique()} recipes written to {args.out} "
          f"in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .models import HYPERPARAMETERS, run_tuning

    start = time.perf_counter()
    if args.nested:
        from .tuning import NESTED, run_nested

        stored = run_nested(args.data, out=args.out or NESTED)
        for key in ("hgb_composite", "rf_composite"):
            for k, fold in enumerate(stored[key]):
                print(f"{key} fold {k + 1}: {fold['params']} (inner R² {fold['inner_r2']})")
        print(f"nested search done in {time.perf_counter() - start:.0f} s; stored in "
              f"{args.out or NESTED}", file=sys.stderr)
        return 0
    stored = run_tuning(args.data, out=args.out or HYPERPARAMETERS, verbose=3)
    for key in ("rf_mmd", "rf_composite"):
        print(f"{key}: {stored[key]['params']} (cross-validated R² {stored[key]['cv_r2']:.4f})")
    print(f"search done in {time.perf_counter() - start:.0f} s; stored in {args.out or HYPERPARAMETERS}",
          file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .dataset import load_dataset
    from .evaluation import evaluate

    result = evaluate(load_dataset(args.data), args.model, args.features, args.split)
    if args.json:
        json.dump(result, sys.stdout)
        print()
        return 0
    name = f"best ({result['best']})" if args.model == "best" else args.model
    print(f"{name}, {args.features} features, {args.split} split")
    for t in result["r2"]:
        print(f"  {t:8s} R² {result['r2'][t]:.4f}   relative MAE {result['rel_mae'][t]:.2f} %")
    spread = result["fold_global_r2"]
    extra = f" (folds {min(spread):.3f} to {max(spread):.3f})" if len(spread) > 1 else ""
    print(f"  global R² {result['global_r2']:.4f}{extra}")
    return 0


def _invert(args: argparse.Namespace) -> int:
    import warnings

    from .finder import find_recipe, read_sec_file

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w = read_sec_file(args.mmd, signal=args.signal)
        result = find_recipe(w, args.cba_time, args.mn, args.mw)
    result["warnings"] = [str(c.message) for c in caught] + result["warnings"]
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from .inversion import forward
        from .plots import mmd_overlay

        fig = mmd_overlay({"re-simulated: inversion": forward(result["recipe"])["mmd"],
                           "re-simulated: machine learning": forward(result["ml"]["recipe"])["mmd"]},
                          reference=("your MMD", w))
        fig.savefig(args.plot, dpi=120)
    if args.json:
        json.dump(result, sys.stdout)
        print()
        return 0
    units = {"cBA_0": "mol/L", "cAIBN_0": "mol/L", "temp": "°C", "time": "s"}
    used = ", ".join(result["features"] + ["MMD"])
    print(f"recipe (physics-based inversion, 90 % intervals; observed: {used})")
    for k, v in result["recipe"].items():
        lo, hi = result["interval"][k]
        ml = result["ml"]["recipe"][k]
        print(f"  {k:8s} {v:10.4g} {units[k]:6s} [{lo:.4g}, {hi:.4g}]   (machine learning: {ml:.4g})")
    rt = result["roundtrip"]
    ml_l1 = result["ml"]["roundtrip"]["mmd_l1"]
    print(f"round trip: MMD L1 {rt['mmd_l1']:.4f} (machine-learning recipe: {ml_l1:.4f})")
    for name in ("cBA_time", "Mn", "Mw"):
        if rt[f"{name}_rel"] is not None:
            print(f"  {name} relative error {100 * rt[f'{name}_rel']:+.2f} %")
    print(f"in the training domain: {'yes' if result['in_domain'] else 'NO'}")
    for message in result["warnings"]:
        print(f"warning: {message}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="simulate one recipe and print its samples")
    p.add_argument("--cba0", type=float, required=True, help="initial BA concentration, mol/L")
    p.add_argument("--caibn0", type=float, required=True, help="initial AIBN concentration, mol/L")
    p.add_argument("--temp", type=float, required=True, help="temperature, °C")
    p.add_argument("--engine", choices=["ode", "kmc"], default="ode")
    p.add_argument("--seed", type=int, default=0, help="kMC seed")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("sweep", help="all 432 recipes of the design, one row each")
    p.add_argument("--engine", choices=["ode", "kmc"], default="ode")
    p.add_argument("--seed", type=int, default=0, help="kMC seed of the first recipe")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)

    from .dataset import DEFAULT_SEED, WORKBOOK

    p = sub.add_parser("dataset", help="regenerate the study's workbook")
    p.add_argument("--engine", choices=["kmc", "ode"], default="kmc")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--out", default=str(WORKBOOK))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_dataset)

    p = sub.add_parser("tune", help="rerun the study's random-forest search, store the chosen values")
    p.add_argument("--data", default=None, help="workbook (default: $POLYINVERSE_DATA or ours)")
    p.add_argument("--out", default=None, help="JSON file (default: data/hyperparameters.json, "
                   "or data/nested_tuning.json with --nested)")
    p.add_argument("--nested", action="store_true",
                   help="search inside each grouped outer fold (boosted trees and the study's forest)")
    p.set_defaults(func=_tune)

    p = sub.add_parser("evaluate", help="metrics of one model on the row split or on unseen recipes")
    p.add_argument("--model", choices=list(MODELS), default="rf",
                   help="the study's rf or nn; hgb, knn, nn+ (chapter 9); best = " + BEST)
    p.add_argument("--features", choices=["mmd", "composite"], default="composite")
    p.add_argument("--split", choices=["rows", "recipes"], default="rows")
    p.add_argument("--data", default=None, help="workbook (default: $POLYINVERSE_DATA or ours)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("invert", help="find the recipe of your own MMD (SEC/GPC export)")
    p.add_argument("--mmd", required=True, help="two columns: log M (or M) and the signal")
    p.add_argument("--signal", choices=["w", "dn"], default="w",
                   help="the second column is w(log M) (default) or dn/dlog M")
    p.add_argument("--cba-time", type=float, default=None, help="remaining BA, mol/L")
    p.add_argument("--mn", type=float, default=None, help="Mn, g/mol")
    p.add_argument("--mw", type=float, default=None, help="Mw, g/mol")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--plot", default=None, help="PNG file: your MMD and the re-simulated ones")
    p.set_defaults(func=_invert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RecipeError, DatasetError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
