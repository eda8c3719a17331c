"""Namer training crops cut from simulated *scenes* (the site renderer), as the pipeline sees them.

Chips from the chip renderer teach the namer cars; the site renderer draws them differently
(its own sky light, trains in blocks, bridge and sidings), and a namer trained on chips alone
names covered cars in scenes worse than in chips (see models/README.md). This renders
scenes of the benchmark yard with seeds that neither the error-matrix measurement (100–109) nor
the accuracy benchmark (0–2, 10–11) uses, warps them onto the model's grid through the pipeline's
own scene plan and reads, runs the finder alone over them, and cuts every box it returns into
a canonical crop, labelled with the class of the true car it overlaps (rotated IoU >= 0.3) or
"not a car": the namer learns from boxes placed exactly as the finder places them.

    python scripts/make_scene_crops.py --scenes 30 --seed 300 --out runs/namer/scenes.npz
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from simscenes import Density, benchmark_site, render_to_file, scene_time

from railwatch.classes import CLASSES
from railwatch.detect.crops import CropSpec, box_axes, canonical_crops
from railwatch.detect.detections import Detections
from railwatch.detect.detector import Detector, DetectorSettings, load_detector
from railwatch.detect.manifest import default_model_dir
from railwatch.detect.observation import observe_scene
from railwatch.imagery.scene import open_scene
from railwatch.imagery.tile import Tile
from railwatch.simulate.crops import NOT_A_CAR, CropSet, save_crop_set
from railwatch.simulate.ground import Season
from railwatch.simulate.scenario import SceneSpec
from railwatch.training.evaluate import match_boxes

YARD = (632000.0, 4697618.0, 632600.0, 4698018.0)
GSDS = (0.3, 0.4, 0.5, 0.6, 0.7)


class Collector:
    """Stands where the detector stands: passes the scene's tiles to the finder, keeps them, and
    cuts every box the finder returns into a crop, labelled by the true car it overlaps (rotated
    IoU >= 0.3) or "not a car". The crops are thus centred where the finder puts its boxes."""

    def __init__(self, finder: Detector, truth: np.ndarray, classes: np.ndarray, spec: CropSpec) -> None:
        self.finder, self.truth, self.classes, self.spec = finder, truth, classes, spec
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
        pairs = match_boxes(found.corners, self.truth, 0.3, found.confidence)
        for i, j in pairs:
            label[i] = int(self.classes[j])
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
        return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=24)
    p.add_argument("--seed", type=int, default=300)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=default_model_dir(), help="the finder's model folder")
    p.add_argument("--conf", type=float, default=0.15,
                   help="the finder's threshold (low: more hard negatives)")
    args = p.parse_args()
    site = benchmark_site(YARD, "scene-crops")
    two_stage = load_detector(args.model)
    finder = Detector(two_stage.manifest, two_stage.backend, DetectorSettings(conf=args.conf))
    region = site.counting_region()
    spec = CropSpec()
    crops, labels, sizes, chips = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.scenes):
            seed = args.seed + i
            season = tuple(Season)[i % len(Season)]
            density = (Density.MEDIUM, Density.DENSE, Density.SPARSE)[i % 3]
            gsd = GSDS[(i * 3) % len(GSDS)]
            rng = np.random.default_rng(seed)
            spec_i = SceneSpec(at=scene_time(season), gsd=gsd, cloud_fraction=0.0,
                               haze=float(rng.uniform(0.02, 0.3)), season=season, seed=seed)
            sim = render_to_file(site, spec_i, density, Path(tmp) / "s.tif", world_seed=seed)
            truth, classes = sim.truth_in(region)
            collector = Collector(finder, truth, classes, spec)
            observe_scene(open_scene(Path(tmp) / "s.tif", site.crs, site.aoi_local), site, collector)
            if collector.crops:
                crops.append(np.concatenate(collector.crops))
                labels.append(np.asarray(collector.labels, dtype=np.int64))
                sizes.append(np.concatenate(collector.sizes))
                chips.append(np.full(len(collector.labels), seed, dtype=np.int64))
            print(f"scene {seed} ({gsd} m, {season}, {density}): {len(collector.labels)} crops", flush=True)
    all_labels = np.concatenate(labels)
    out = CropSet(np.concatenate(crops), all_labels, np.concatenate(sizes), np.concatenate(chips),
                  np.zeros(len(all_labels), dtype=np.int64), spec)
    save_crop_set(out, args.out, seed=args.seed, scenes=args.scenes, source="simulated site scenes")
    print(args.out, len(out), np.bincount(all_labels, minlength=len(CLASSES) + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
