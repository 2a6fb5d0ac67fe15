"""Whole networks fine-tuned on the movielens posters on a GPU machine: the study's ResNet34
(224x224, 50 epochs, random init) and a whole EfficientNet-Lite0 (the `lite` method), trained and
evaluated by the pipeline's own `train_model` and `evaluate_model` on the movielens experiment's
genres and split, on a machine that has torch but neither dvc nor mlflow.

Three steps, because the GPU machine is reached by copying a working tree of limited size:

    # here, in a repository where the movielens experiment ran (its data/ is read):
    python tools/gpu_run.py pack --run /path/to/that/repo \
        --posters ../shared/data/movielens-posters/posters --spare 20000000
    # there: every .gpuN folder copied into one folder (a transfer of at most 64 MiB each:
    # .gpu1, .gpu2, .gpu3 hold about 62 MB of posters, the last room for the Lite0 wheel's
    # package under site/), then, with PYTHONPATH=src:<that folder>/.gpuN/site:
    python tools/gpu_run.py run --packed <that folder> --work /tmp/gpu-run --out OUT
    # here again: the report from what came back
    python tools/gpu_run.py report --result OUT/gpu_run.json --out reports/movielens-gpu.md

`pack` copies the posters' original bytes (no re-encoding) into tar chunks that each fit one
transfer, with the experiment's interim table, genres, split and resize manifest. `run` resizes
them with the pipeline's resize code, trains and evaluates each method, and times training and
scoring on the machine it runs on.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import platform
import shutil
import sys
import tarfile
import time
from pathlib import Path

import yaml

from postergenre.core.atomic import write_json

log = logging.getLogger("gpu_run")
# What every chunk may hold (the device tool sends at most 64 MiB a call, the repo included).
CHUNK_BYTES = 60 * 2**20
META = [
    "data/interim/genres.json",
    "data/interim/movies.csv",
    "data/split/train.txt",
    "data/split/dev.txt",
    "data/split/test.txt",
    "data/resized/manifest.csv",
]
SIZE = "224x224"
# The settings (docs/gpus.md): the study's ResNet34 from random init with this repo's
# augmentation and warm-up, and the whole Lite0 from its ImageNet weights with a slower trunk.
METHODS = {
    "resnet34": {
        "family": "nets",
        "reads": "training",
        "size": SIZE,
        "epochs": 50,
        "batch_size": 64,
        "lr": 0.001,
        "weight_decay": 0.0,
        "augment": True,
        "warmup_epochs": 2,
        "trunk_lr_factor": 1.0,
        "weights": "none",
    },
    "lite": {
        "family": "nets",
        "reads": "training",
        "size": SIZE,
        "backbone": "efficientnet_lite0",
        "epochs": 15,
        "batch_size": 64,
        "lr": 0.001,
        "weight_decay": 0.0001,
        "dropout": 0.2,
        "augment": True,
        "warmup_epochs": 1,
        "trunk_lr_factor": 0.1,
    },
}


# -- pack (here) -----------------------------------------------------------------------------


def pack(
    run: Path,
    posters: Path,
    out_root: Path,
    limit: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
    first_chunk_spare: int = 0,
) -> list[Path]:
    """Tar the experiment's posters (original bytes, manifest order) into .gpu1, .gpu2, ... under
    `out_root`, the small files in the first; `limit` keeps the first N posters (a smoke run).
    `first_chunk_spare` leaves that many bytes free in the last chunk (for what travels with it)."""
    from postergenre.core.dataset import read_poster_paths

    poster_of = read_poster_paths(Path(), run / "data/interim")  # file names, relative
    with open(run / "data/resized/manifest.csv", encoding="utf-8", newline="") as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    if limit:
        ids = ids[:limit]
    keep = set(ids)
    meta: dict[str, bytes] = {}
    for name in META:
        text = (run / name).read_text(encoding="utf-8")
        if limit and name.startswith("data/split/"):
            text = "".join(f"{i}\n" for i in text.split() if i in keep)
        elif limit and name.endswith("manifest.csv"):
            text = "row,id\n" + "".join(f"{r},{i}\n" for r, i in enumerate(ids))
        meta[name] = text.encode("utf-8")
    files = [(f"posters/{poster_of[i]}", posters / poster_of[i]) for i in ids]
    total = sum(p.stat().st_size for _, p in files) + sum(map(len, meta.values()))
    log.info("pack: %d posters, %.1f MB with the tables", len(files), total / 1e6)
    chunks: list[list[tuple[str, Path]]] = [[]]
    used = sum(len(v) + 1024 for v in meta.values())
    for arc, path in files:
        size = path.stat().st_size + 1024  # a (GNU) tar header and padding
        if used + size > chunk_bytes:
            chunks.append([])
            used = 0
        chunks[-1].append((arc, path))
        used += size
    if used + first_chunk_spare > chunk_bytes:  # the last chunk must leave room
        chunks.append([])
    out = []
    for n, chunk in enumerate(chunks, 1):
        folder = out_root / f".gpu{n}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with tarfile.open(folder / "part.tar", "w", format=tarfile.GNU_FORMAT) as tar:
            if n == 1:
                for name, data in meta.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            for arc, path in chunk:
                tar.add(path, arcname=arc)
        log.info(
            "pack: %s: %d posters, %.1f MB", folder, len(chunk), (folder / "part.tar").stat().st_size / 1e6
        )
        out.append(folder)
    return out


# -- run (there) -----------------------------------------------------------------------------


def unpack(packed: Path, work: Path) -> None:
    parts = sorted(packed.glob(".gpu*/part.tar"), key=lambda p: int(p.parent.name[4:]))
    if not parts:
        raise SystemExit(f"no .gpu*/part.tar under {packed}: run `pack` first")
    for part in parts:
        with tarfile.open(part) as tar:
            tar.extractall(work, filter="data")
    log.info("unpacked %d chunks into %s", len(parts), work)


def gpu_params(repo: Path, epochs: int | None, methods: list[str], size: str) -> dict:
    from postergenre.methods.params import validate

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"].update(source="movielens", path="../shared/data/movielens-posters")
    params["resize"]["sizes"] = [size]
    params["embed"]["size"] = size  # read by no method here, but validated
    params["methods"] = {
        m: {**METHODS[m], "size": size, **({"epochs": epochs} if epochs else {})} for m in methods
    }
    params["feature_methods"] = {}
    params.pop("ensemble", None)
    return validate(params)


def run(
    repo: Path,
    packed: Path,
    work: Path,
    out: Path,
    methods: list[str],
    epochs: int | None = None,
    size: str = SIZE,
) -> dict:
    t_start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    unpack(packed, work)
    out.mkdir(parents=True, exist_ok=True)
    # the pipeline's functions read data/... relative to the repository root
    with contextlib.chdir(work):
        result = _resize_train_evaluate(repo, out, methods, epochs, size)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    write_json(out / "gpu_run.json", result)
    return result


def _resize_train_evaluate(repo: Path, out: Path, methods: list[str], epochs: int | None, size: str) -> dict:
    import torch

    from postergenre.core import dataset
    from postergenre.core.images import resize_posters
    from postergenre.methods import load_model
    from postergenre.pipeline.evaluate import evaluate_model
    from postergenre.pipeline.train import train_model

    poster_of = dataset.read_poster_paths(Path("posters"))
    ids = dataset.read_manifest()
    shutil.move("data/resized/manifest.csv", "manifest.expected.csv")
    t0 = time.perf_counter()
    report = resize_posters(ids, [poster_of[i] for i in ids], [size], "data/resized-new", progress=False)
    resize_s = time.perf_counter() - t0
    if dataset.read_manifest(Path("data/resized-new")) != ids:
        raise SystemExit(f"resize kept other posters than the experiment's: {report}")
    shutil.rmtree("data/resized")
    os.replace("data/resized-new", "data/resized")
    params = gpu_params(repo, epochs, methods, size)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    result = {
        "device": device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "posters": len(ids),
        "size": size,
        "resize_s": round(resize_s, 2),
        "methods": {},
    }
    for method in methods:
        log.info("%s: training with %s", method, params["methods"][method])
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        summary = train_model(params, method, f"models/{method}", f"plots/{method}")
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        details = evaluate_model(f"models/{method}", f"metrics/{method}.json")
        evaluate_s = time.perf_counter() - t0
        model = load_model(f"models/{method}")
        test = model.inputs("test", dataset.read_genres())
        model.predict_proba(test.X[:64])  # warm-up
        t0 = time.perf_counter()
        model.predict_proba(test.X)
        score_s = time.perf_counter() - t0
        history = model.history
        epochs_run = sum(1 for r in history if r.get("epoch", 0) >= 1)
        best = max((r for r in history if "dev_mAP" in r), key=lambda r: r["dev_mAP"])
        result["methods"][method] = {
            "settings": params["methods"][method],
            "summary": summary,
            "details": details,
            "history": history,
            "best_epoch": best["epoch"],
            "train_s": round(train_s, 1),
            "evaluate_s": round(evaluate_s, 1),
            "train_posters_per_s": round(summary["n_train"] * epochs_run / train_s, 1),
            "score_posters_per_s": round(len(test.ids) / score_s, 1),
        }
        log.info(
            "%s: %.1f s training (%s posters/s), test mAP %.4f",
            method,
            train_s,
            result["methods"][method]["train_posters_per_s"],
            details["test"]["scores"]["mAP"],
        )
        write_json(out / "gpu_run.json", result)  # what is done so far survives a time-out
    return result


# -- report (here) ---------------------------------------------------------------------------


def report(result: dict) -> str:
    """Markdown: each method's test (and dev) numbers beside the label-frequency bar, timings."""
    lines = [
        "# Whole networks fine-tuned on a GPU (movielens posters)",
        "",
        "Generated by `python tools/gpu_run.py report` from the result of `tools/gpu_run.py run`",
        f"on {result['device']} (torch {result['torch']}, CUDA {result['cuda']}, Python "
        f"{result['python']}): {result['posters']} posters at {result['size']}, the movielens",
        "experiment's genres and split; trained and evaluated by the pipeline's own `train_model`",
        "and `evaluate_model` (thresholds and the operating point tuned on dev). Numbers from",
        "another GPU or torch version differ in the last digits (bfloat16 autocast, other kernels).",
        "",
        "| method | split | mAP | macro ROC-AUC | macro-F1 tuned | micro-F1 op. | macro-F1 op. "
        "| label frequency micro-F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, r in result["methods"].items():
        for split in ("dev", "test"):
            b = r["details"][split]
            lines.append(
                f"| {method} | {split} | {b['scores']['mAP']:.4f} | "
                f"{b['scores']['macro_roc_auc']:.4f} | {b['tuned']['macro_f1']:.4f} | "
                f"{b['decided']['micro_f1']:.4f} | {b['decided']['macro_f1']:.4f} | "
                f"{b['label_frequency']['micro_f1']:.4f} |"
            )
    lines += [
        "",
        "| method | settings | epochs run (best dev) | training | posters/s trained | posters/s scored |",
        "|---|---|---|---|---|---|",
    ]
    for method, r in result["methods"].items():
        s = r["settings"]
        shown = ", ".join(f"{k} {v}" for k, v in s.items() if k != "size")
        epochs_run = sum(1 for h in r["history"] if h.get("epoch", 0) >= 1)
        lines.append(
            f"| {method} | {shown} | {epochs_run} ({r['best_epoch']}) | "
            f"{r['train_s']:.0f} s | {r['train_posters_per_s']:.0f} | "
            f"{r['score_posters_per_s']:.0f} |"
        )
    lines += [
        "",
        "Training time is `train_model`'s wall time: every epoch's dev scoring, the threshold "
        "and operating-point tuning and the first batches' CUDA start-up included; posters/s "
        "trained = training posters x epochs / that time. Scored: the test split through "
        "the saved model, after a warm-up batch.",
        "",
        f"Resizing the {result['posters']} posters there: {result['resize_s']:.1f} s; "
        f"the whole run: {result.get('total_s', float('nan')):.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="posters and tables into .gpu1 .. .gpuN chunks")
    p.add_argument("--run", type=Path, required=True, help="repository where movielens ran")
    p.add_argument("--posters", type=Path, required=True, help="the posters folder")
    p.add_argument("--out", type=Path, default=Path("."), help="where the .gpuN folders go")
    p.add_argument("--limit", type=int, default=0, help="first N posters only (a smoke run)")
    p.add_argument("--spare", type=int, default=0, help="bytes the last chunk leaves free")
    r = sub.add_parser("run", help="resize, train and evaluate (on the GPU machine)")
    r.add_argument("--packed", type=Path, default=Path("."), help="folder holding .gpu1 ..")
    r.add_argument("--work", type=Path, required=True, help="scratch folder")
    r.add_argument("--out", type=Path, required=True, help="where gpu_run.json goes")
    r.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    r.add_argument("--epochs", type=int, default=None, help="override (a smoke run)")
    r.add_argument("--size", default=SIZE, help="override (a smoke run)")
    m = sub.add_parser("report", help="markdown from gpu_run.json")
    m.add_argument("--result", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    repo = Path(__file__).resolve().parent.parent
    if args.command == "pack":
        pack(args.run.resolve(), args.posters.resolve(), args.out, args.limit, first_chunk_spare=args.spare)
    elif args.command == "run":
        run(
            repo,
            args.packed.resolve(),
            args.work.resolve(),
            args.out.resolve(),
            args.methods,
            args.epochs,
            args.size,
        )
    else:
        text = report(json.loads(args.result.read_text(encoding="utf-8")))
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
