"""Namer training crops cut from simulated *scenes*, where the shipped finder puts its boxes.

Chips from the chip renderer teach the namer cars; scenes draw them differently (the site
renderer's own sky light, trains in blocks, bridge and sidings; whole yards of European or
1520 mm stock under any sun and sensor), and a namer trained on chips alone names covered cars
in scenes worse than in chips (see models/README.md). This renders two kinds of scene with
seeds that no benchmark uses (error matrix 100–109, threshold 150–155, loop 400–402, accuracy
0–2 and 10–11):

- ``site``: the benchmark yard of the Tumangang–Khasan site (:mod:`simscenes`), 1520 mm stock,
  every season, 0.25–0.8 m, haze, off-nadir views, sparse to dense;
- ``yard``: generic yards (:mod:`railwatch.simulate.yardscene`), half European marshalling
  yards (weeds on some), half 1520 mm sidings, a random sun (10–75°), sensor and season;
- with ``--bridge``, only site scenes of the bridge over the Tumen: a train on the deck, its
  shadow bands on the deck (a hard negative no yard shows).

Each scene is warped onto the model's grid through the pipeline's own scene plan and reads,
the finder alone runs over it at a low threshold, and every box it returns is cut into a
canonical crop, labelled with the class of the true car it overlaps (rotated IoU >= 0.3, with
that car's hard-case tag) or "not a car". The sidecar JSON keeps each scene's conditions
(kind, gsd, season, sun elevation, stock), keyed by the crop's ``chip`` (the scene's seed).

    python scripts/make_scene_crops.py --scenes 240 --seed 500 --out ~/railwatch-runs/namer-v3/train.npz
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from simscenes import Density, benchmark_site, render_to_file, scene_time

from railwatch.classes import CLASSES
from railwatch.detect.crops import CropSpec, box_axes, canonical_crops
from railwatch.detect.detections import Detections
from railwatch.detect.detector import Detector, DetectorSettings, load_detector
from railwatch.detect.manifest import default_model_dir
from railwatch.detect.observation import observe_file, observe_scene
from railwatch.imagery.scene import open_scene
from railwatch.imagery.tile import Tile
from railwatch.simulate.crops import NOT_A_CAR, CropSet, hard_case, save_crop_set
from railwatch.simulate.ground import Season
from railwatch.simulate.scenario import SceneSpec
from railwatch.simulate.sun import Sun
from railwatch.simulate.yardscene import (
    EUROPEAN_YARD,
    SIDINGS_1520,
    TUMANGANG,
    YardScene,
    render_yard_scene,
    write_yard_scene,
)
from railwatch.site import Site
from railwatch.training.evaluate import match_boxes

YARD = (632000.0, 4697618.0, 632600.0, 4698018.0)
#: The Tumangang–Khasan bridge over the Tumen (its zone, 60 m around): trains on a deck whose
#: shadow bands fall on the deck itself, not on ballast.
BRIDGE = (634675.0, 4696996.0, 635371.0, 4697359.0)


class Collector:
    """Stands where the detector stands: passes the scene's tiles to the finder, keeps them, and
    cuts every box the finder returns into a crop, labelled by the true car it overlaps (rotated
    IoU >= 0.3) or "not a car". The crops are thus centred where the finder puts its boxes."""

    def __init__(self, finder: Detector, truth: np.ndarray, classes: np.ndarray, hard: np.ndarray,
                 spec: CropSpec) -> None:
        self.finder, self.truth, self.classes, self.hard, self.spec = finder, truth, classes, hard, spec
        self.tags: list[int] = []
        self.tiles: list[Tile] = []
        self.crops: list[np.ndarray] = []
        self.labels: list[int] = []
        self.sizes: list[np.ndarray] = []

    @property
    def gsd(self) -> float:
        return self.finder.gsd

    @property
    def model_sha256(self) -> str:
        return "scene-crops"

    @property
    def chip_layout(self) -> object:
        return self.finder.chip_layout

    def start(self, region: object) -> Collector:
        self.inner = self.finder.start(region)
        return self

    def add(self, tile: Tile) -> None:
        self.tiles.append(tile)
        self.inner.add(tile)

    def result(self) -> Detections:
        found = self.inner.result()
        label = np.full(len(found), NOT_A_CAR, dtype=np.int64)
        tag = np.zeros(len(found), dtype=np.int64)
        pairs = match_boxes(found.corners, self.truth, 0.3, found.confidence)
        for i, j in pairs:
            label[i] = int(self.classes[j])
            tag[i] = int(self.hard[j])
        done = np.zeros(len(found), dtype=bool)
        for tile in self.tiles:
            px = tile.map_to_pixels(found.corners)
            col, row = px.mean(axis=1).T
            c = tile.core
            mine = (~done & (c.col_off <= col) & (col < c.col_off + c.cols)
                    & (c.row_off <= row) & (row < c.row_off + c.rows))
            if mine.any():
                done |= mine
                self.crops.append(canonical_crops(tile.array, px[mine], tile.gsd, self.spec))
                _, _, length, width = box_axes(px[mine])
                self.sizes.append(np.column_stack([length * tile.gsd, width * tile.gsd]).astype(np.float32))
                self.labels.extend(label[mine].tolist())
                self.tags.extend(tag[mine].tolist())
        return found


def site_scene(site: Site, finder: Detector, seed: int, work: Path) -> tuple[Collector, dict[str, object]]:
    """A scene of the benchmark yard of the site, drawn from ``seed``."""
    rng = np.random.default_rng([seed, 77])
    season = tuple(Season)[int(rng.integers(len(Season)))]
    density = tuple(Density)[int(rng.integers(3))]
    gsd = round(float(rng.uniform(0.25, 0.8)), 3)
    off_nadir = float(rng.uniform(0.0, 20.0)) if rng.random() < 0.5 else 0.0
    spec = SceneSpec(at=scene_time(season), gsd=gsd, cloud_fraction=0.0, haze=float(rng.uniform(0.02, 0.3)),
                     season=season, noise=float(rng.uniform(1.5, 7.0)), off_nadir_deg=off_nadir,
                     view_azimuth_deg=float(rng.uniform(0.0, 359.0)), seed=seed)
    sim = render_to_file(site, spec, density, work / "s.tif", world_seed=seed)
    region = site.counting_region()
    inside = sim.visible_in(region)
    hard = sim.hard if sim.hard is not None else np.zeros(len(sim.true_class), dtype=np.int64)
    collector = Collector(finder, sim.true_corners.reshape(-1, 4, 2)[inside], sim.true_class[inside],
                          hard[inside], CropSpec())
    observe_scene(open_scene(work / "s.tif", site.crs, site.aoi_local), site, collector)
    return collector, {"kind": "site", "gsd": gsd, "season": str(season), "sun": round(sim.sun_elevation, 1),
                       "stock": "1520", "density": str(density), "off_nadir": round(off_nadir, 1)}


def yard_scene(finder: Detector, seed: int, work: Path) -> tuple[Collector, dict[str, object]]:
    """A generic yard (European or 1520 mm sidings) drawn from ``seed``."""
    rng = np.random.default_rng([seed, 78])
    season = tuple(Season)[int(rng.integers(len(Season)))]
    european = rng.random() < 0.5
    style = EUROPEAN_YARD if european else SIDINGS_1520
    if european and rng.random() < 0.4:
        lo = float(rng.uniform(0.05, 0.4))
        style = replace(style, weeds=(lo, lo + 0.1))
    gsd = round(float(rng.uniform(0.25, 0.8)), 3)
    sun = Sun(float(rng.uniform(100.0, 220.0)), float(rng.uniform(10.0, 75.0)))
    spec = YardScene(seed=seed, gsd=gsd, size_m=240.0, style=style, season=season, sun=sun,
                     place=(8.55, 47.40) if european else TUMANGANG)
    scene = render_yard_scene(spec)
    path, truth_file = write_yard_scene(scene, work / "y.tif")
    truth = np.array([c.corners() for c in scene.cars]).reshape(-1, 4, 2)
    classes = np.array([c.car.cls.class_id for c in scene.cars], dtype=np.int64)
    hard = np.array([hard_case(c, sun.elevation_deg) for c in scene.cars], dtype=np.int64)
    collector = Collector(finder, truth, classes, hard, CropSpec())
    try:
        observe_file(path, collector)
    finally:
        path.unlink()
        truth_file.unlink()
    return collector, {"kind": "yard", "gsd": gsd, "season": str(season), "sun": round(sun.elevation_deg, 1),
                       "stock": "european" if european else "1520"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=24, help="how many scenes; every other one a generic yard")
    p.add_argument("--seed", type=int, default=500)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=default_model_dir(), help="the finder's model folder")
    p.add_argument("--conf", type=float, default=0.15,
                   help="the finder's threshold (low: more hard negatives)")
    p.add_argument("--bridge", action="store_true",
                   help="only site scenes of the bridge (trains on the deck) instead of yards")
    args = p.parse_args()
    site = benchmark_site(BRIDGE if args.bridge else YARD, "scene-crops")
    two_stage = load_detector(args.model)
    finder = Detector(two_stage.manifest, two_stage.backend, DetectorSettings(conf=args.conf))
    crops, labels, sizes, chips, tags = [], [], [], [], []
    conditions: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.scenes):
            seed = args.seed + i
            if i % 2 and not args.bridge:
                collector, cond = yard_scene(finder, seed, Path(tmp))
            else:
                collector, cond = site_scene(site, finder, seed, Path(tmp))
            conditions[str(seed)] = cond
            if collector.crops:
                crops.append(np.concatenate(collector.crops))
                labels.append(np.asarray(collector.labels, dtype=np.int64))
                sizes.append(np.concatenate(collector.sizes))
                chips.append(np.full(len(collector.labels), seed, dtype=np.int64))
                tags.append(np.asarray(collector.tags, dtype=np.int64))
            print(f"scene {seed} {cond}: {len(collector.labels)} crops", flush=True)
    all_labels = np.concatenate(labels)
    out = CropSet(np.concatenate(crops), all_labels, np.concatenate(sizes), np.concatenate(chips),
                  np.concatenate(tags), CropSpec())
    save_crop_set(out, args.out, seed=args.seed, scenes=args.scenes,
                  source="simulated scenes (site and yard)",
                  finder=str(args.model), finder_conf=args.conf, conditions=conditions)
    print(args.out, len(out), np.bincount(all_labels, minlength=len(CLASSES) + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
