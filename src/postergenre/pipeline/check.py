"""check-params: params.yaml valid, its data folders there, the hand-listed stages current.

The stage runs `python -m postergenre.pipeline.check --out data/params_check.json` (also
`postergenre check-params`). ingest depends on the marker it writes, so DVC runs this check
before it would remove ingest's output for a bad `data.path`; the marker never changes, so a
passing check re-runs nothing downstream.

DVC cannot interpolate a list into `deps`, so dvc.yaml lists by hand the models the ensemble
reads (its members) and those genre-maps reads (the methods with heat maps); this check fails,
naming both lists, when they differ from params.yaml.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml

from postergenre.core.atomic import write_json
from postergenre.core.paths import SYNTHETIC, resolve_data_path
from postergenre.runtime import entry

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=None, help="write a marker file when valid (the DVC stage's output)")
    entry.add_params_option(parser)


def _models_listed(stage: dict) -> list[str]:
    return [d.split("/", 1)[1] for d in stage.get("deps", []) if d.startswith("models/")]


def check_listed_stages(dvc_yaml: dict, params: dict) -> None:
    """The stages whose model folders dvc.yaml lists by hand read the right ones: the ensemble's
    (its members, or neither stage without an ensemble section) and genre-maps' (every method of
    params.yaml with heat maps)."""
    # here, not at the top: the method registry builds its settings models (pydantic) on import,
    # about 0.35 s that `postergenre check-params --help` does not need (bench/cli.py)
    from postergenre.methods import estimator_class
    from postergenre.methods.params import all_methods

    stages = (dvc_yaml or {}).get("stages") or {}
    members = (params.get("ensemble") or {}).get("members")
    for name in ("train-ensemble", "evaluate-ensemble"):
        stage = stages.get(name)
        if stage is None:
            if members is not None:
                raise ValueError(
                    f"params.yaml has an ensemble section but dvc.yaml has no stage "
                    f"{name}: add the stage, or delete the section to skip it"
                )
            continue
        if members is None:
            raise ValueError(
                f"dvc.yaml has the stage {name} but params.yaml no ensemble section: "
                "delete the stage to skip the ensemble"
            )
        listed = [m for m in _models_listed(stage) if m != "ensemble"]
        if sorted(listed) != sorted(members):
            raise ValueError(
                f"dvc.yaml's {name} reads the models of {', '.join(listed)} but "
                f"ensemble.members is {', '.join(members)}: DVC cannot list a "
                "params list as deps, so edit the stage's models/ and method-code "
                "deps to match"
            )
    if "genre-maps" in stages:
        mapped = [m for m in all_methods(params) if estimator_class(m).has_heatmaps]
        listed = _models_listed(stages["genre-maps"])
        if sorted(listed) != sorted(mapped):
            raise ValueError(
                f"dvc.yaml's genre-maps reads the models of {', '.join(listed)} but "
                f"the methods with heat maps in params.yaml are {', '.join(mapped)}: "
                "edit the stage's models/, metrics/details/ and method-code deps to "
                "match"
            )


# What each source reads from data.path (docs/data.md: where to get each)
READS = {
    "movielens": "a folder with MovieLens' links.csv and movies.csv, and posters/",
    "tmdb": "The Movies Dataset's movies_metadata.csv (or its folder, with posters/)",
    "csv": "movies.csv (id, title, genres, poster), or its folder",
}


def check_data_paths(data: dict, synthetic_out: str) -> None:
    """The folders the source reads exist, or a ValueError that says what was expected there.
    The synthetic source reads the synthesize stage's output (made later in the same run), so
    its data.path must be that folder: any other would be removed and missed by ingest."""
    if data["source"] == "synthetic":
        for key, want in (("path", synthetic_out), ("posters", "")):
            given = data[key]
            if os.path.normpath(given) != os.path.normpath(want):
                raise ValueError(
                    f"data.source synthetic reads the synthesize stage's output {synthetic_out}"
                    f"{'/posters' if key == 'posters' else ''}, so data.{key} must be "
                    f"{want!r}, not {given!r} (for other posters set data.source too: "
                    "docs/data.md); nothing was changed"
                )
        return
    for key in ("path", "posters"):
        if data[key] and not resolve_data_path(data[key]).exists():
            resolved = resolve_data_path(data[key])
            where = "" if str(resolved) == data[key] else f" (resolved to {resolved})"
            what = READS.get(data["source"], "") if key == "path" else "the folder of posters"
            raise ValueError(
                f"data.{key} {data[key]!r} does not exist{where}; the "
                f"{data['source']} source reads {what} there (docs/data.md says "
                "where to get it); nothing was changed"
            )


def run(args: argparse.Namespace, params: dict) -> None:
    from postergenre.methods.params import all_methods  # as in check_listed_stages

    synthetic_out = str(SYNTHETIC)
    if Path("dvc.yaml").is_file():
        dvc_yaml = yaml.safe_load(Path("dvc.yaml").read_text(encoding="utf-8"))
        check_listed_stages(dvc_yaml, params)
        synthetic_out = dvc_yaml["stages"].get("synthesize", {}).get("outs", [synthetic_out])[0]
    data = params["data"]
    check_data_paths(data, synthetic_out)
    if args.out:
        write_json(args.out, {"params": "valid"})
    log.info(
        "params: %s is valid (source %s, methods %s)",
        args.params or "params.yaml",
        data["source"],
        ", ".join(all_methods(params)),
    )


if __name__ == "__main__":
    sys.exit(entry.main("check", __doc__, add_arguments, run))
