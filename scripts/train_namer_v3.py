"""Namer v3: train candidate namers on scene crops cut where the shipped finder puts its boxes,
compare them on held-out scene crops (overall, covered cars, the hard pairs, per condition) and
by cost per crop, and package one with the shipped finder.

Inputs: crop sets of ``scripts/make_scene_crops.py`` (training and held-out scenes) and chip
crops of today's chip renderer (cut here, cached beside the output). Each candidate gets the same
wall-clock budget on the same machine, one at a time:

- ``small-v2``: the shipped 155 k CNN (namer v2) fine-tuned;
- ``small``: the same CNN from scratch;
- ``mobilenet_v2``: torchvision's MobileNetV2 (first 14 blocks, the first 7 frozen) grown from
  ImageNet weights (``--imagenet``, the file ``mobilenet_v2-b0353104.pth``).

    python scripts/train_namer_v3.py --crops ~/railwatch-runs/namer-v3 --imagenet mobilenet_v2-b0353104.pth \
        --minutes 20 --candidates small-v2 mobilenet_v2 --out ~/railwatch-runs/namer-v3/runs
    python scripts/train_namer_v3.py --crops ~/railwatch-runs/namer-v3 --package mobilenet_v2 \
        --out ~/railwatch-runs/namer-v3/runs --model-out ~/railwatch-runs/model-v3n

Writes ``OUT/<candidate>/namer.pt`` and ``OUT/compare.json``. All crops are SIMULATED.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from railwatch.detect.crops import CropSpec
from railwatch.detect.manifest import NAMER_WEIGHTS, ModelManifest, default_model_dir
from railwatch.simulate.crops import HARD_CASES, CropSet, load_crop_set, make_crop_set, save_crop_set
from railwatch.training.namer import (
    NamerSettings,
    build_net,
    export_onnx,
    load_state,
    predict_torch,
    save_state,
    train_namer,
)
from railwatch.training.namer_stage import namer_accuracy, package_namer

#: Chip crops of today's chip renderer beside the scene crops (seed never used by the finder's data).
CHIP_SEED, CHIPS = 3100, 500

CANDIDATES = {
    "small-v2": NamerSettings(epochs=8, lr=6e-4, arch="small"),
    "small": NamerSettings(epochs=8, lr=2e-3, arch="small"),
    "mobilenet_v2": NamerSettings(epochs=5, lr=1e-3, arch="mobilenet_v2"),
}


def gsd_band(gsd: float) -> str:
    return "0.25–0.4 m" if gsd < 0.4 else ("0.4–0.6 m" if gsd < 0.6 else "0.6–0.8 m")


def sun_band(elevation: float) -> str:
    return "sun < 25°" if elevation < 25 else ("sun 25–50°" if elevation < 50 else "sun ≥ 50°")


def per_condition(pred: np.ndarray, val: CropSet, conditions: dict[str, dict[str, object]]
                  ) -> dict[str, object]:
    """Accuracy and covered-car accuracy per condition of the scene each crop came from."""
    keys = {"gsd": lambda c: gsd_band(float(c["gsd"])), "sun": lambda c: sun_band(float(c["sun"])),
            "season": lambda c: str(c["season"]), "stock": lambda c: str(c["stock"]),
            "kind": lambda c: str(c["kind"])}
    out: dict[str, object] = {}
    for key, f in keys.items():
        value = np.array([f(conditions[str(s)]) for s in val.chip])
        rows = {}
        for v in sorted(set(value)):
            m = value == v
            cov = m & (val.labels == 0)
            rows[v] = {"crops": int(m.sum()), "accuracy": round(float((pred[m] == val.labels[m]).mean()), 4),
                       "covered": int(cov.sum()),
                       "covered_accuracy": round(float((pred[cov] == 0).mean()), 4) if cov.any() else None}
        out[key] = rows
    return out


def onnx_cost(net: object, spec: CropSpec, work: Path, n: int = 512) -> float:
    """Milliseconds per crop (all four views) of the exported namer in ONNX Runtime, 2 threads."""
    import onnxruntime as ort

    path = export_onnx(net, spec, work / "cost.onnx")  # type: ignore[arg-type]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows, cols = spec.shape
    x = np.random.default_rng(0).uniform(0, 255, (n, 3, rows, cols)).astype(np.float32)
    s = np.full((n, 2), 15.0, np.float32)
    session.run(None, {"image": x[:64], "size_m": s[:64]})
    t = time.perf_counter()
    for i in range(0, n, 128):
        session.run(None, {"image": x[i : i + 128], "size_m": s[i : i + 128]})
    return (time.perf_counter() - t) / n * 1000


def plan_epochs(name: str, base: object, imagenet: Path | None, train_set: tuple[np.ndarray, ...],
                n_val: int, minutes: float) -> int:
    """How many whole epochs (one-cycle schedules end where they should) fit in ``minutes``:
    a few timed batches forward and backward, and a timed held-out pass of 4 views."""
    import torch

    from railwatch.training.namer import build_mobilenet

    settings = CANDIDATES[name]
    if base is not None:  # timed on a copy: its BatchNorm statistics must not move before training
        net = copy.deepcopy(base)
    else:
        net = build_mobilenet(imagenet) if settings.arch == "mobilenet_v2" else build_net(settings.widths)
    net.train()  # type: ignore[attr-defined]
    x = torch.from_numpy(train_set[0][: settings.batch].astype(np.float32))
    z = torch.from_numpy(train_set[2][: settings.batch].astype(np.float32))
    net(x, z).sum().backward()  # type: ignore[operator]
    t = time.perf_counter()
    for _ in range(3):
        net(x, z).sum().backward()  # type: ignore[operator]
    train_s = (time.perf_counter() - t) / (3 * settings.batch) * len(train_set[0])
    t = time.perf_counter()
    predict_torch(net, train_set[0][:256], train_set[2][:256])  # type: ignore[arg-type]
    val_s = (time.perf_counter() - t) / 256 * n_val
    return max(1, int(minutes * 60 * 0.92 // (train_s * 1.1 + val_s)))


def load_sets(folder: Path, workers: int) -> tuple[CropSet, CropSet, CropSet, dict[str, dict[str, object]]]:
    train, val = load_crop_set(folder / "scenes-train.npz"), load_crop_set(folder / "scenes-val.npz")
    conditions = json.loads((folder / "scenes-val.json").read_text(encoding="utf-8"))["conditions"]
    chips_path = folder / f"chips-{CHIP_SEED}-{CHIPS}.npz"
    if not chips_path.is_file():
        chips = make_crop_set(CHIP_SEED, CHIPS, train.spec, workers=workers)
        save_crop_set(chips, chips_path, seed=CHIP_SEED, chips=CHIPS, source="simulated chips")
    return train, val, load_crop_set(chips_path), conditions


def joined(*sets: CropSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets]),
            np.concatenate([s.size_m for s in sets]))


def evaluate(net: object, val: CropSet, conditions: dict[str, dict[str, object]]) -> dict[str, object]:
    acc = namer_accuracy(net, val.images, val.labels, val.size_m, val.tag, HARD_CASES)  # type: ignore[arg-type]
    pred = predict_torch(net, val.images, val.size_m).argmax(1)  # type: ignore[arg-type]
    acc["per_condition"] = per_condition(pred, val, conditions)
    return acc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crops", type=Path, required=True, help="folder of scenes-train.npz and scenes-val.npz")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--candidates", nargs="*", default=[], choices=sorted(CANDIDATES))
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of each candidate")
    p.add_argument("--imagenet", type=Path, help="mobilenet_v2-b0353104.pth")
    p.add_argument("--model", type=Path, default=default_model_dir(), help="the shipped model folder")
    p.add_argument("--package", help="package this trained candidate (a name in OUT/compare.json)")
    p.add_argument("--model-out", type=Path, help="where --package writes the two-stage model folder")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--extra", type=Path, nargs="*", default=[],
                   help="more crop sets (make_scene_crops.py --bridge): trained on whole, their "
                        "'-val' twins held out and reported on their own")
    p.add_argument("--replay", type=float, default=1.0,
                   help="share of the base crops trained on beside --extra")
    p.add_argument("--start", help="fine-tune the namer of this earlier candidate (OUT/START/namer.pt)")
    p.add_argument("--name", help="the name the --start run is kept under")
    args = p.parse_args()
    import torch

    torch.set_num_threads(2)
    train, val, chips, conditions = load_sets(args.crops, args.workers)
    train_set = joined(train, chips)
    if args.replay < 1.0:
        keep = np.random.default_rng(7).random(len(train_set[1])) < args.replay
        train_set = (train_set[0][keep], train_set[1][keep], train_set[2][keep])
    extra_val: dict[str, CropSet] = {}
    for path in args.extra:
        more = load_crop_set(path)
        train_set = (np.concatenate([train_set[0], more.images]), np.concatenate([train_set[1], more.labels]),
                     np.concatenate([train_set[2], more.size_m]))
        twin = path.with_name(path.stem.replace("-train", "-val") + ".npz")
        if twin.is_file():
            extra_val[twin.stem] = load_crop_set(twin)
    val_set = (val.images, val.labels, val.size_m)
    print(f"train {len(train_set[1])} crops ({len(train)} scene, {len(chips)} chip), held out {len(val)} "
          f"scene crops; labels {np.bincount(train_set[1]).tolist()}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report_path = args.out / "compare.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    shipped = ModelManifest.load(args.model)
    if "shipped-v2" not in report:
        net = load_state(shipped.verified_path(NAMER_WEIGHTS))
        report["shipped-v2"] = {"accuracy": evaluate(net, val, conditions),
                                "ms_per_crop_onnx": round(onnx_cost(net, train.spec, args.out), 3)}
    runs = [(name, name) for name in args.candidates]
    if args.start:
        runs.append((args.name or f"{args.start}+", "small-v2"))
    for name, kind in runs:
        if name != kind:
            base = load_state(args.out / args.start / "namer.pt")
        else:
            base = load_state(shipped.verified_path(NAMER_WEIGHTS)) if name == "small-v2" else None
        epochs = plan_epochs(kind, base, args.imagenet, train_set, len(val), args.minutes)
        settings = replace(CANDIDATES[kind], epochs=epochs, hours=args.minutes / 60)
        print(f"{name}: {epochs} epochs fit in {args.minutes} min on {len(train_set[1])} crops", flush=True)
        net, record = train_namer(train_set, val_set, train.spec, settings, base=base,
                                  base_name=(None if base is None else "namer v2" if name == kind
                                             else f"namer {args.start}"),
                                  imagenet=args.imagenet if kind == "mobilenet_v2" else None)
        folder = args.out / name
        folder.mkdir(exist_ok=True)
        save_state(net, folder / "namer.pt", train.spec, settings.widths, settings.arch)
        report[name] = {"training": record.as_json(), "accuracy": evaluate(net, val, conditions),
                        "command": "python scripts/train_namer_v3.py " + " ".join(sys.argv[1:]),
                        "ms_per_crop_onnx": round(onnx_cost(net, train.spec, args.out), 3),
                        "parameters": sum(q.numel() for q in net.parameters()),
                        "held_out_extra": {
                            k: namer_accuracy(net, v.images, v.labels, v.size_m, v.tag, HARD_CASES)
                            for k, v in extra_val.items()}}
        report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        a = report[name]["accuracy"]
        print(f"{name}: accuracy {a['accuracy']}, covered {a['per_label']['covered_car']}, "
              f"{report[name]['ms_per_crop_onnx']} ms/crop", flush=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.package:
        if args.model_out is None:
            p.error("--package needs --model-out")
        name = args.package
        net = load_state(args.out / name / "namer.pt")
        doc = report[name]
        settings = NamerSettings(**{k: (tuple(v) if isinstance(v, list) else v)
                                    for k, v in doc["training"]["settings"].items()})
        from railwatch.training.namer import NamerTraining

        t = doc["training"]
        record = NamerTraining(settings, train.spec, t["train_crops"], t["val_crops"], t["history"],
                               t["seconds"], t["base"])
        accuracy = dict(doc["accuracy"])
        accuracy["measured_on"] = (f"{len(val)} crops of {len(conditions)} held-out simulated scenes "
                                   "(scripts/make_scene_crops.py --scenes 80 --seed 1000), cut where the "
                                   "finder puts its boxes")
        command = ("python scripts/make_scene_crops.py --scenes 400 --seed 500 "
                   "--out CROPS/scenes-train.npz && "
                   "python scripts/make_scene_crops.py --scenes 80 --seed 1000 --out CROPS/scenes-val.npz && "
                   + str(doc.get("command", "python scripts/train_namer_v3.py --crops CROPS "
                                            f"--candidates {name}")))
        package_namer(args.model, args.model_out, net, record, accuracy, command=command)
        print(f"packaged {name} with the finder of {args.model} into {args.model_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
