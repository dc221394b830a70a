"""Command line: python -m analysis simulate | sweep | dataset | tune | evaluate | bound | invert |
examples."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .calibration import CALIBRATION_ROWS
from .dataset import DEFAULT_SEED, WORKBOOK, DatasetError
from .design import UNITS
from .evaluation import BEST, MODELS
from .inversion import InversionBudgetError
from .kinetics import Recipe, RecipeError
from .measurement import PROFILES, ObservationError
from .ode import SolverBudgetError
from .outputs import OutputError, atomic_write, check_writable
from .sec_file import InputError

ERRORS = (RecipeError, DatasetError, InputError, OutputError, SolverBudgetError, InversionBudgetError,
          ConnectionError, ObservationError)


def _seed(text: str) -> int:
    """A kMC seed: an integer from 0 to 2**32 - 1 (refused, not folded, outside that range)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the seed must be an integer, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"the seed must be from 0 to {2**32 - 1}, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _simulate(args: argparse.Namespace) -> int:
    from .engines import simulate

    recipe = Recipe(args.cba0, args.caibn0, args.temp)
    run = simulate(recipe, args.engine, **({"seed": args.seed} if args.engine == "kmc" else {}))
    if args.json:
        try:
            print(json.dumps(run.to_dict(), allow_nan=False))
        except ValueError:
            raise RecipeError(f"the {args.engine} run of {recipe} produced non-finite values") from None
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

    from .design import design
    from .engines import simulate

    check_writable(args.out, "CSV file")
    rows = []
    start = time.perf_counter()
    for i, recipe in enumerate(tqdm(design(), desc=f"{args.engine} sweep", disable=args.quiet)):
        opts = {"with_mmd": False} if args.engine == "ode" else {"seed": args.seed + i}
        run = simulate(recipe, args.engine, **opts)
        rows.append({"temp": recipe.temp, "cBA_0": recipe.cBA_0, "cAIBN_0": recipe.cAIBN_0,
                     "conversion_3600": run.conversion[-1], "t_stop": run.t_stop,
                     "Mn": run.Mn[-1], "Mw": run.Mw[-1]})
    atomic_write(args.out, pd.DataFrame(rows).to_csv(index=False))
    n_stop = sum(r["t_stop"] < 3600 for r in rows)
    print(f"{len(rows)} recipes in {time.perf_counter() - start:.1f} s; {n_stop} reach 90 % "
          f"conversion before 3600 s; written to {args.out}", file=sys.stderr)
    return 0


def _dataset(args: argparse.Namespace) -> int:
    from .dataset import generate, write_workbook
    from .design import latin_hypercube

    check_writable(args.out, "workbook")
    if args.design == "grid" and args.n_recipes is not None:
        raise DatasetError("--n-recipes is for --design lhs; the study's grid has 432 recipes")
    recipes = latin_hypercube(args.n_recipes or 432, seed=args.seed) if args.design == "lhs" else None
    start = time.perf_counter()
    frame = generate(args.engine, jobs=args.jobs, seed=args.seed, progress=not args.quiet, recipes=recipes,
                     scheduler=args.scheduler)
    write_workbook(frame, args.out)
    print(f"{len(frame)} rows from {frame['recipe_id'].nunique()} recipes written to {args.out} "
          f"in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .hyperparameters import NESTED_SEARCH, STUDY_SEARCH
    from .tuning import run_nested, run_study_search

    if args.finder and args.calibrate:
        raise DatasetError("--finder and --calibrate are two runs: give one (`make tune` runs both)")
    if args.noise and not args.calibrate:
        raise DatasetError("--noise chooses the profiles of --calibrate: give --calibrate too")
    if args.out:
        check_writable(args.out, "JSON file" if not args.finder else "model file")
    start = time.perf_counter()
    if args.calibrate:
        from .calibration import CALIBRATION
        from .what_to_measure import write_calibration

        stored = write_calibration(args.data, tuple(args.noise) if args.noise else None,
                                   out=args.out or CALIBRATION)
        for noise, sets in stored["factors"].items():
            for name, factors in sets.items():
                print(f"{noise} {name}: " + " ".join(f"{t} {q:.3f}" for t, q in factors.items()))
        print(f"intervals calibrated in {time.perf_counter() - start:.0f} s; stored in "
              f"{args.out or CALIBRATION}", file=sys.stderr)
        return 0
    if args.finder:
        from .finder import STORE, write_finder_models

        fitted = write_finder_models(args.out or STORE, args.data)
        print(f"finder models fitted on {fitted.data_sha256[:12]}... in {time.perf_counter() - start:.0f} s; "
              f"stored in {args.out or STORE}", file=sys.stderr)
        return 0
    if args.nested:
        stored = run_nested(args.data, out=args.out or NESTED_SEARCH)
        for key in ("hgb_composite", "rf_composite"):
            for k, fold in enumerate(stored[key]):
                print(f"{key} fold {k + 1}: {fold['params']} (inner R² {fold['inner_r2']})")
        print(f"nested search done in {time.perf_counter() - start:.0f} s; stored in "
              f"{args.out or NESTED_SEARCH}", file=sys.stderr)
        return 0
    stored = run_study_search(args.data, out=args.out or STUDY_SEARCH, verbose=3)
    for key in ("rf_mmd", "rf_composite"):
        print(f"{key}: {stored[key]['params']} (cross-validated R² {stored[key]['cv_r2']:.4f})")
    print(f"search done in {time.perf_counter() - start:.0f} s; stored in {args.out or STUDY_SEARCH}",
          file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .dataset import load_dataset
    from .evaluation import evaluate

    measured = args.noise is not None or args.observe is not None
    if measured:
        from .what_to_measure import achieved, parse_observe, profile

        noise, observe = args.noise or "ideal", parse_observe(args.observe or "composite")
        profile(noise)
        allowed = {"model": (None, "hgb", "best"), "features": (None, "composite"),
                   "split": (None, "recipes")}
        conflicts = [f"--{name} {getattr(args, name)}" for name, ok in allowed.items()
                     if getattr(args, name) not in ok]
        if conflicts:
            raise ObservationError(f"--noise/--observe evaluate the boosted trees (hgb) on the composite "
                                   f"observables and unseen recipes; drop {', '.join(conflicts)}")
        frame = load_dataset(args.data, observables={"cAIBN_time", "branching"} & set(observe) != set())
        result = achieved(frame, noise, observe)
        if args.json:
            json.dump(result, sys.stdout)
            print()
            return 0
        observed = ", ".join(result["observe"])
        print(f"hgb on measured rows ({noise} noise; observed: {observed}), unseen recipes")
        for t in result["r2"]:
            print(f"  {t:8s} R² {result['r2'][t]:.4f}   relative MAE {result['rel_mae'][t]:.2f} %")
        print(f"  global R² {result['global_r2']:.4f}")
        return 0
    args.model, args.features = args.model or "rf", args.features or "composite"
    args.split = args.split or "rows"
    result = evaluate(load_dataset(args.data), args.model, args.features, args.split, data=args.data)
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


def _bound(args: argparse.Namespace) -> int:
    from .dataset import load_dataset
    from .identifiability import design_jacobians, noise_model
    from .what_to_measure import design_ceiling, design_lattice, measured_bound, parse_observe, profile

    observe = parse_observe(args.observe)
    profile(args.noise)
    if args.method == "ceiling" and "sample2" in observe:
        raise ObservationError("the sound ceiling covers single samples: --observe without sample2")
    start = time.perf_counter()
    frame = load_dataset(args.data, observables=True)
    rj = design_jacobians(frame, extended=True)
    sigma = noise_model(frame, rj)
    se = None
    if args.method == "ceiling":
        table = design_ceiling(design_lattice(frame, rj, sigma), args.noise, observe)
        r2, se = table.loc["R²"].to_dict(), table.loc["se"].to_dict()
    else:
        r2 = measured_bound(frame, rj, sigma, args.noise, observe)
    if args.json:
        document = {"noise": args.noise, "observe": ["composite", *observe], "method": args.method, "r2": r2}
        if se is not None:
            document["se"] = se
        print(json.dumps(document, allow_nan=False))
        return 0
    observed = ", ".join(["composite", *observe])
    how = ("linearised valley bound" if se is None
           else "sound ceiling: exact Bayes estimate over the workbook's rows, ± Monte Carlo se")
    print(f"best reachable R² on the design ({args.noise} noise; observed: {observed}; {how}, chapter 9c)")
    for t, v in r2.items():
        print(f"  {t:8s} {v:.3f}" + ("" if se is None else f" ± {se[t]:.3f}"))
    print(f"computed in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _invert(args: argparse.Namespace) -> int:
    import warnings

    from threadpoolctl import threadpool_limits

    from .finder import STORE, check_extras, check_known, find_recipe, is_stored, profile_store
    from .sec_file import read_sec_file

    if args.plot:
        check_writable(args.plot, "plot")
    check_extras(args.cba_time, args.mn, args.mw)
    check_known(args.caibn_time, args.branching, args.time, args.temp, args.noise)  # warnings: find_recipe
    notes: list[str] = []
    # one thread per library: a call must stay fast whatever else runs (OpenMP threads of the boosted
    # trees fighting other processes for the cores made one call take minutes)
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
        warnings.simplefilter("always")
        w = read_sec_file(args.mmd, signal=args.signal, notes=notes)
        if not is_stored(noise=args.noise):
            print(f"no stored finder models for the {args.noise!r} profile: this call fits them (about a "
                  f"minute and a half, once) and stores them in {profile_store(STORE, args.noise)}; the next "
                  "calls read them", file=sys.stderr)
        result = find_recipe(w, args.cba_time, args.mn, args.mw, cAIBN_time=args.caibn_time,
                             branching=args.branching, time=args.time, temp=args.temp, noise=args.noise)
    if PROFILES[args.noise].instrument:
        notes.append(f"{args.noise} measurement: the inversion compares the re-simulated trace through that "
                     "instrument (chapter 9b); Mn and Mw are computed from the trace and not fitted again; "
                     "the machine-learning estimate was trained on the simulator's traces")
    result["notes"] = notes
    result["warnings"] = [str(c.message) for c in caught] + result["warnings"]
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        _print_recipe(result)
    if args.plot:
        _save_plot(result, w, args.plot)
    return 0


def _save_plot(result: dict, w, path: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    from .design import clip_to_box
    from .inversion import forward
    from .plots import mmd_overlay

    ml_recipe = clip_to_box(result["ml"]["recipe"])
    fig = mmd_overlay({"re-simulated: inversion": forward(result["recipe"])["mmd"],
                       "re-simulated: machine learning": forward(ml_recipe)["mmd"]},
                      reference=("your MMD", w))
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=120, format="png")
    atomic_write(path, buffer.getvalue())


def _print_recipe(result: dict) -> None:
    used = ", ".join(result["features"] + ["MMD"])
    post = result["posterior"]
    print(f"recipe (physics-based inversion: the valley's recipe at the posterior median temperature; "
          f"posterior mean and 90 % credible interval; observed: {used}; noise: {result['noise']})")
    for k, v in result["recipe"].items():
        lo, hi = result["interval"][k]
        ml = result["ml"]["recipe"][k]
        print(f"  {k:8s} {v:10.4g} {UNITS[k]:6s} mean {post['mean'][k]:<10.4g} [{lo:.4g}, {hi:.4g}]   "
              f"(machine learning: {ml:.4g})")
    print(f"temperature and initiator trade along the valley: posterior correlation "
          f"{post['correlation_temp_cAIBN_0']:+.2f}")
    cal = result["calibration"]
    how = {"calibrated": f"calibrated for {cal['observed']}",
           "largest of the calibrated sets": f"{cal['observed']} is not calibrated: the largest factors of "
                                             "the calibrated sets",
           "uncalibrated": "not calibrated for this profile: the posterior's own"}[cal["basis"]]
    print(f"intervals: {how} (factors " + ", ".join(f"{k} {q:.2f}" for k, q in cal["factors"].items()) + ")")
    rt = result["roundtrip"]
    ml_l1 = result["ml"]["roundtrip"]["mmd_l1"]
    print(f"round trip: MMD L1 {rt['mmd_l1']:.4f} (machine-learning recipe: {ml_l1:.4f})")
    for name in ("cBA_time", "Mn", "Mw"):
        if rt[f"{name}_rel"] is not None:
            print(f"  {name} relative error {100 * rt[f'{name}_rel']:+.2f} %")
    print(f"in the training domain: {'yes' if result['in_domain'] else 'NO'}; fit: {result['fit']['status']}")
    for message in result["notes"]:
        print(f"note: {message}")
    for message in result["warnings"]:
        print(f"warning: {message}")


def _examples(args: argparse.Namespace) -> int:
    from .examples import make_examples

    check_writable(f"{args.out.rstrip('/')}/truth.json", "example directory")
    truth = make_examples(args.out)
    print(f"{len(truth)} example exports and truth.json written to {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("simulate", help="simulate one recipe and print its samples")
    p.add_argument("--cba0", type=float, required=True, help="initial BA concentration, mol/L")
    p.add_argument("--caibn0", type=float, required=True, help="initial AIBN concentration, mol/L")
    p.add_argument("--temp", type=float, required=True, help="temperature, °C")
    p.add_argument("--engine", choices=["ode", "kmc"], default="ode")
    p.add_argument("--seed", type=_seed, default=0, help="kMC seed, 0 to 2**32 - 1")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_simulate)

    p = sub.add_parser("sweep", help="all 432 recipes of the design, one row each")
    p.add_argument("--engine", choices=["ode", "kmc"], default="ode")
    p.add_argument("--seed", type=_seed, default=0, help="kMC seed of the first recipe")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("dataset", help="regenerate the study's workbook")
    p.add_argument("--engine", choices=["kmc", "ode"], default="kmc")
    p.add_argument("--jobs", type=_positive_int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--seed", type=_seed, default=DEFAULT_SEED)
    p.add_argument("--out", default=str(WORKBOOK))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--design", choices=["grid", "lhs"], default="grid",
                   help="the study's 6 x 8 x 9 grid, or recipes drawn by a seeded Latin hypercube in its box")
    p.add_argument("--n-recipes", type=_positive_int, default=None, help="recipes of the lhs design (432)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on a Dask cluster (scheduler address, e.g. tcp://host:8786) instead of locally")
    p.set_defaults(func=_dataset)

    p = sub.add_parser("tune", help="rerun the study's random-forest search, store the chosen values")
    p.add_argument("--data", default=None, help="workbook (default: $POLYINVERSE_DATA or ours)")
    p.add_argument("--out", default=None, help="JSON file (default: data/hyperparameters.json, "
                   "or data/nested_tuning.json with --nested)")
    p.add_argument("--nested", action="store_true",
                   help="search inside each grouped outer fold (boosted trees and the study's forest)")
    p.add_argument("--finder", action="store_true",
                   help="fit the finder's models and domain once and store them "
                        "(data/finder_models.pickle.gz)")
    p.add_argument("--calibrate", action="store_true",
                   help="calibrate the physics inversion's 90 %% intervals on measured rows of half the "
                        f"recipes, for the {' and '.join(CALIBRATION_ROWS)} profiles, and store the factors "
                        "(data/interval_calibration.json; about an hour and a half on two cores)")
    p.add_argument("--noise", choices=list(CALIBRATION_ROWS), action="append", default=None,
                   help="with --calibrate: calibrate only this profile (repeatable); a stored file of the "
                        "same workbook and inversion settings keeps the other profile's factors")
    p.set_defaults(func=_tune)

    p = sub.add_parser("evaluate", help="metrics of one model on the row split or on unseen recipes")
    p.add_argument("--model", choices=list(MODELS), default=None,
                   help="the study's rf (default) or nn; hgb, knn, nn+ (chapter 9); best = " + BEST)
    p.add_argument("--features", choices=["mmd", "composite"], default=None,
                   help="composite (default) or mmd")
    p.add_argument("--split", choices=["rows", "recipes"], default=None, help="rows (default) or recipes")
    p.add_argument("--data", default=None, help="workbook (default: $POLYINVERSE_DATA or ours)")
    p.add_argument("--noise", choices=list(PROFILES), default=None,
                   help="train and test on rows measured with this profile (boosted trees, unseen recipes)")
    p.add_argument("--observe", default=None, metavar="SET",
                   help="composite[,temp][,time][,cAIBN_time][,branching][,sample2] (with --noise: ideal)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("bound", help="best reachable R² per target for a noise profile and observation set")
    p.add_argument("--noise", choices=list(PROFILES), default="typical")
    p.add_argument("--observe", default="composite", metavar="SET",
                   help="composite[,temp][,time][,cAIBN_time][,branching][,sample2]")
    p.add_argument("--data", default=None, help="workbook with its observables sheet (default: ours)")
    p.add_argument("--method", choices=["linearised", "ceiling"], default="linearised",
                   help="linearised valley bound (default), or the sound ceiling: the exact Bayes estimate "
                        "when the recipe is one of the workbook's rows (no model scored on them beats it)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=_bound)

    p = sub.add_parser("invert", help="find the recipe of your own MMD (SEC/GPC export)")
    p.add_argument("--mmd", required=True, help="two columns: log M (or M) and the signal")
    p.add_argument("--signal", choices=["w", "dn"], default="w",
                   help="the second column is w(log M) (default) or dn/dlog M")
    p.add_argument("--cba-time", type=float, default=None, help="remaining BA, mol/L")
    p.add_argument("--mn", type=float, default=None, help="Mn, g/mol")
    p.add_argument("--mw", type=float, default=None, help="Mw, g/mol")
    p.add_argument("--caibn-time", type=float, default=None, help="residual AIBN, mol/L (HPLC, NMR)")
    p.add_argument("--branching", type=float, default=None,
                   help="branching density, mol %% (branch points per 100 monomer units; 13C NMR)")
    sds = {name: (f"{q.known_time:g} s", f"{q.known_temp:g} °C") for name, q in PROFILES.items()}
    p.add_argument("--time", type=float, default=None,
                   help="known reaction time, s (held to the profile's sd: "
                        + ", ".join(f"{n} {sd[0]}" for n, sd in sds.items()) + ")")
    p.add_argument("--temp", type=float, default=None,
                   help="known reaction temperature, °C (held to the profile's sd: "
                        + ", ".join(f"{n} {sd[1]}" for n, sd in sds.items()) + ")")
    p.add_argument("--noise", choices=list(PROFILES), default="typical",
                   help="how your data were measured (chapter 9b): typical (default), poor, or ideal "
                        "(simulator quality)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--plot", default=None, help="PNG file: your MMD and the re-simulated ones")
    p.set_defaults(func=_invert)

    p = sub.add_parser("examples", help="rewrite the example SEC exports and their truth.json")
    p.add_argument("--out", default="data/examples", help="directory")
    p.set_defaults(func=_examples)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
