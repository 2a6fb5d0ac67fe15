"""dvc.yaml's stages, written from params.yaml, the method registry and the stages' imports.

DVC cannot interpolate a list into `deps`, and each stage runs different code (its module and
the package modules it imports), so every stage is written out here, each listing exactly the
code files (followed through the imports), data files and params it reads.
Sizes stay `${...}` references to params.yaml, so `dvc exp run -S methods.custom.size=...` needs
no rewrite; adding or removing a method, or an import, does: `postergenre dag` (check-params and
a test fail, naming the command, while dvc.yaml is stale).

Everything above the marker line in dvc.yaml is hand-written and kept as it is.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from postergenre import entry
from postergenre.methods import code_files, method_module
from postergenre.params import all_methods, method_spec_in, stage_params

log = logging.getLogger(__name__)

MARKER = ("  # ---- written by `postergenre dag` from params.yaml and the method modules; "
          "edit those, not below ----\n")
LABELS = ["data/interim/genres.json", "data/interim/movies.csv"]


def _inputs(params: dict[str, Any], method: str) -> tuple[list[str], str]:
    """The data files a method's stages read (besides the split), and its model folder."""
    spec = method_spec_in(params, method)
    if spec.input == "features":
        # features where they fit (data/features holds every embed stage's folder: DVC links
        # this stage after all of them); the posters at the embed stage's size otherwise, for a
        # fine-tune, and for the evaluate stage's gallery
        data = ["data/resized/manifest.csv", "data/resized/${embed.size}.npy", "data/features"]
    else:
        data = ["data/resized/manifest.csv", f"data/resized/${{{spec.group}.{method}.size}}.npy"]
    return LABELS + data, f"models/{method}"


def _members(params: dict[str, Any], method: str) -> list[str]:
    """The methods an ensemble reads the trained models of (none for any other method)."""
    return list((all_methods(params)[method] or {}).get("members") or [])


def method_stages(params: dict[str, Any], method: str) -> dict[str, dict]:
    data, model = _inputs(params, method)
    members = _members(params, method)
    for member in members:  # their model folders, and what they read to score a split
        data += [d for d in _inputs(params, member)[0] if d not in data] + [f"models/{member}"]
    module = method_module(method)
    # an ensemble loads its members by name (importlib): their modules are code it runs too
    modules = [module, *map(method_module, members)]
    plots = f"plots/{method}"
    train = {
        "cmd": f"python -m postergenre.train {method}",
        "deps": data + ["data/split/train.txt", "data/split/dev.txt"]
        + code_files("postergenre.train", *modules),
        "params": stage_params(params, method),
        "outs": [model],
    }
    if method_spec_in(params, method).trains_in_epochs:  # kNN and the baseline have no curve
        train["plots"] = [
            # templates in .dvc/plots/: one colour per curve (train, dev; per swept setting)
            {f"{plots}/training.json": {"cache": False, "template": "loss_curves",
                                        "x": "epoch", "y": "loss"}},
            f"{plots}/training.png",
        ]
    evaluate = {
        "cmd": f"python -m postergenre.evaluate {method}",
        "deps": [model] + data + ["data/split/test.txt", "data/split/train.txt", "data/split/dev.txt"]
        + code_files("postergenre.evaluate", *modules),
        # in git, diffable, but not a column of `dvc exp show`
        "outs": [{f"metrics/details/{method}.json": {"cache": False}},
                 {f"{plots}/per_genre.json": {"cache": False}}],
        "metrics": [{f"metrics/{method}.json": {"cache": False}}],
        "plots": [
            {f"{plots}/f1.json": {"cache": False, "template": "f1_bars", "x": "f1",
                                  "y": "genre"}},
            {f"{plots}/pr_curves.json": {"template": "pr_by_genre", "x": "recall",
                                         "y": "precision"}},
            f"{plots}/f1.png", f"{plots}/pr_curves.png", f"{plots}/gallery.png",
        ],
    }
    return {f"train-{method}": train, f"evaluate-{method}": evaluate}


def genre_maps_stage(params: dict[str, Any]) -> dict[str, Any] | None:
    """The figure of what each genre looks like: it reads every method with heat maps (their
    test mAP picks one), so their models, metrics and inputs."""
    from postergenre.genre_maps import CAM_METHODS

    methods = [m for m in all_methods(params) if m in CAM_METHODS]
    if not methods:
        return None
    deps: list[str] = []
    for method in methods:
        data, model = _inputs(params, method)
        deps += [d for d in data if d not in deps] + [model, f"metrics/{method}.json"]
    return {
        "cmd": "python -m postergenre.genre_maps --out plots/genres",
        "deps": deps + ["data/split/test.txt"]
        + code_files("postergenre.genre_maps", *map(method_module, methods)),
        "params": ["training.threads"],
        "outs": ["plots/genres"],
    }


def report_stage(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "cmd": "python -m postergenre.report",
        "deps": [f"metrics/details/{m}.json" for m in all_methods(params)]
        + ["data/interim/ingest_report.json", "data/split/split_report.json"]
        + code_files("postergenre.report"),
        "params": ["seed", "k", "data.source", "data.path", "data.posters", "data.poster_key",
                   "methods", "embed", "feature_methods"],
        "outs": [{"reports/results.md": {"cache": False}}],
    }


# The data stages: what they read besides their code, their params and outputs.
DATA_STAGES: dict[str, dict[str, Any]] = {
    "synthesize": {"args": "--out data/raw/synthetic", "deps": [],
                   "params": ["seed", "data.synthetic"], "outs": ["data/raw/synthetic"]},
    "ingest": {"args": "--out data/interim", "deps": ["data/params_check.json", "${data.path}"],
               "params": ["data.source", "data.path", "data.posters", "data.poster_key",
                          "data.poster_ext", "clean"], "outs": ["data/interim"]},
    "resize": {"args": "--interim data/interim --out data/resized",
               "deps": ["data/interim/movies.csv"], "params": ["data.path", "data.posters", "resize"],
               "outs": ["data/resized"]},
    "split": {"args": "--interim data/interim --resized data/resized --out data/split",
              "deps": LABELS + ["data/resized/manifest.csv"], "params": ["seed", "split"],
              "outs": ["data/split"]},
    # One stage per backbone and view (a DVC matrix: `dvc exp run -S embed.views=[...]` adds
    # stages, and only those run). Its timing goes to metrics/embed/, outside the cached output:
    # a forced re-run gives the same features and re-runs nothing downstream.
    "embed": {"args": "--backbone ${item.backbone} --view ${item.view} --resized data/resized "
                      "--out data/features/${item.backbone}/${item.view} "
                      "--timing metrics/embed/${item.backbone}-${item.view}.json",
              "matrix": {"backbone": "${embed.backbones}", "view": "${embed.views}"},
              "deps": ["data/resized/manifest.csv", "data/resized/${embed.size}.npy"],
              "params": ["embed.size", "embed.batch_size", "embed.threads"],
              "outs": ["data/features/${item.backbone}/${item.view}"],
              "metrics": [{"metrics/embed/${item.backbone}-${item.view}.json": {"cache": False}}]},
}


def data_stage(name: str) -> dict[str, Any]:
    spec = DATA_STAGES[name]
    module = f"postergenre.stages.{name}"
    stage = {"matrix": spec["matrix"]} if "matrix" in spec else {}
    stage |= {"cmd": f"python -m {module} {spec['args']}",
             "deps": spec["deps"] + code_files(module), "params": spec["params"],
             "outs": spec["outs"]}
    if "metrics" in spec:
        stage["metrics"] = spec["metrics"]
    return stage


def check_stage(stages: dict[str, dict]) -> dict[str, Any]:
    """check-params runs its own code and reads, to see whether dvc.yaml is current, every code
    file the method stages and the report list: exactly those are its deps."""
    read = {d for stage in stages.values() for d in stage["deps"] if d.startswith("src/")}
    return {
        "cmd": "python -m postergenre.check --out data/params_check.json",
        "deps": sorted(read | set(code_files("postergenre.check"))),
        "params": [{"params.yaml": None}],
        # a failed check leaves the last good marker: nothing to restore
        "outs": [{"data/params_check.json": {"persist": True}}],
    }


def generated(params: dict[str, Any]) -> str:
    """The YAML text below the marker."""
    stages: dict[str, Any] = {name: data_stage(name) for name in DATA_STAGES}
    for method in all_methods(params):
        stages.update(method_stages(params, method))
    maps = genre_maps_stage(params)
    if maps is not None:
        stages["genre-maps"] = maps
    stages["report"] = report_stage(params)
    method_stages_only = {k: v for k, v in stages.items() if k not in DATA_STAGES}
    stages = {"check-params": check_stage(method_stages_only), **stages}
    text = yaml.safe_dump(stages, sort_keys=False, default_flow_style=False, width=100)
    return "".join(f"  {line}\n" if line else "\n" for line in text.splitlines())


def render(dvc_yaml: str, params: dict[str, Any]) -> str:
    """dvc.yaml's text with everything below the marker written anew."""
    if MARKER not in dvc_yaml:
        raise ValueError(f"dvc.yaml has no marker line {MARKER.strip()!r}: nothing to write below")
    return dvc_yaml.split(MARKER)[0] + MARKER + generated(params)


def stale(path: Path, params: dict[str, Any]) -> bool:
    text = path.read_text(encoding="utf-8")
    return render(text, params) != text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dvc-yaml", default="dvc.yaml", help="the file to rewrite below its marker")
    parser.add_argument("--check", action="store_true",
                        help="only say whether dvc.yaml is current (exit 2 if not)")
    entry.add_params_option(parser)


def run(args: argparse.Namespace, params: dict) -> None:
    from postergenre.atomic import write_text

    path = Path(args.dvc_yaml)
    if args.check:
        if stale(path, params):
            raise ValueError(f"{path} is stale: its method stages do not match params.yaml and "
                             "the method modules' imports; run `postergenre dag`")
        log.info("dag: %s is current", path)
        return
    text = path.read_text(encoding="utf-8")
    new = render(text, params)
    if new != text:
        write_text(path, new)
    log.info("dag: %s %s (%d methods)", path, "rewritten" if new != text else "already current",
             len(all_methods(params)))
    prune_lock(path.with_name("dvc.lock"), yaml.safe_load(new)["stages"])


def prune_lock(lock_path: Path, stages: dict) -> None:
    """Drop dvc.lock's entries for stages dvc.yaml no longer has (DVC keeps them forever)."""
    if not lock_path.is_file():
        return
    from dvc.utils.serialize import dump_yaml, load_yaml

    lock = load_yaml(lock_path)
    # a matrix stage `embed` is locked as `embed@<backbone>-<view>`, one entry per item (an
    # entry under its bare name is from before it was a matrix)
    def kept(name: str) -> bool:
        base = name.split("@")[0]
        grouped = "matrix" in stages.get(base, {}) or "foreach" in stages.get(base, {})
        return base in stages and ("@" in name) == grouped

    gone = [name for name in lock.get("stages", {}) if not kept(name)]
    for name in gone:
        del lock["stages"][name]
    if gone:
        dump_yaml(lock_path, lock)
        log.info("dag: dropped %s from %s", ", ".join(gone), lock_path)


if __name__ == "__main__":
    sys.exit(entry.main("dag", __doc__, add_arguments, run))
