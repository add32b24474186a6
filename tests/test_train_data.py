"""Training data: what each experiment supervises, subsets, batches and bad inputs."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
import torch
from test_train_inputs import make_inputs, resolved

from gazeloc.datasets.annotations import AnnotationStore
from gazeloc.datasets.sets import collate
from gazeloc.errors import DataFormatError
from gazeloc.train.data import annotated_subset, build_data
from gazeloc.train.loop import annotation_targets


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("train_data"))


def test_et_store_labels_maps_and_empty_windows(inputs):
    store = AnnotationStore("et", heatmaps=inputs.heatmaps)
    readings = store.readings()
    assert readings.height == 8 and readings.filter(pl.col("split") == "train").height == 6
    maps, labels, localized = store.read("P3_000")
    assert maps.shape == (10, 32, 32) and maps.dtype == np.float16
    assert labels[0] and localized[0]
    assert labels[5] and not localized[5]  # mentioned, every window empty: no localization
    data = build_data(
        resolved("et"), index=inputs.index, manifest=inputs.manifest, heatmaps=inputs.heatmaps
    )
    item = data.train[data.train.n_unannotated]  # P3_000
    assert item.known[0] and not item.known[5] and item.known.sum() == 9
    assert item.maps is not None and np.array_equal(item.maps, maps)


def test_ellipse_store(inputs):
    store = AnnotationStore("ellipse", ellipses=inputs.ellipses)
    maps, labels, localized = store.read("P3_000")
    assert maps.dtype == bool and labels[0] and localized[0] and not labels[5]
    assert np.array_equal(localized, labels)  # no ellipse of these vanishes


def test_vanishing_ellipse_is_trained_as_an_all_negative_map(tmp_path):
    path = tmp_path / "ellipses.h5"
    masks = np.zeros((10, 8, 8), bool)
    masks[0, 2:5, 2:5] = True
    labels = np.zeros(10, bool)
    labels[[0, 4]] = True  # label 4's ellipse vanished in the frame: positive, empty mask
    with h5py.File(path, "w") as f:
        g = f.create_group("P3_000")
        g.attrs.update({"split": "train", "dicom_id": "d0", "subject_id": 1})
        g.create_dataset("ellipses", data=masks)
        g.create_dataset("ellipse_labels", data=labels)
        g.create_dataset("ellipse_labels_any", data=labels)
    maps, got, localized = AnnotationStore("ellipse", ellipses=path).read("P3_000")
    assert got[4] and not maps[4].any()
    assert localized[4] and localized[0]  # the reference: annotated, all cells negative
    known = ~(got & ~localized)
    assert known.all()
    skip = AnnotationStore("ellipse", ellipses=path, vanishing_ellipses="skip")
    _, _, localized = skip.read("P3_000")
    assert localized[0] and not localized[4]  # left out of the loss and the decoder
    with pytest.raises(ValueError, match="vanishing_ellipses"):
        AnnotationStore("ellipse", ellipses=path, vanishing_ellipses="drop")


def test_full_report_heatmaps_without_label_specificity(inputs):
    store = AnnotationStore(
        "et", heatmaps=inputs.heatmaps, ellipses=inputs.ellipses, label_specific=False
    )
    with h5py.File(inputs.heatmaps) as f:
        full = f["P3_000"]["full_report"][()]
    maps, labels, _ = store.read("P3_000")
    assert labels[0] and not labels[5]  # labels: ellipses of any certainty
    assert np.array_equal(maps[0], full) and not maps[1:].any()
    maps1, labels1, localized1 = store.read("P3_001")  # a low-certainty ellipse only
    assert labels1[2] and not localized1[2] and not maps1.any()


def test_build_data_sets(inputs):
    data = build_data(resolved("none"), index=inputs.index, manifest=inputs.manifest)
    assert (len(data.train), data.train.n_annotated, len(data.val)) == (12, 0, 8)
    data = build_data(
        resolved("ellipse"), index=inputs.index, manifest=inputs.manifest, ellipses=inputs.ellipses
    )
    assert (len(data.train), data.train.n_annotated) == (18, 6) and data.binary_maps
    image = data.train[0].image
    assert image.dtype == np.uint8 and image.shape == (32, 32)
    with pytest.raises(ValueError, match="heatmaps"):
        build_data(resolved("et"), index=inputs.index, manifest=inputs.manifest)


def test_unknown_labels_are_masked(inputs):
    data = build_data(resolved("none"), index=inputs.index, manifest=inputs.manifest)
    ids = data.train.dicom_ids
    assert not data.train[ids.index("d001")].known[7]
    assert data.train[ids.index("d000")].known.all()


def test_percentage_annotated_prefix_and_random(inputs):
    store = AnnotationStore("et", heatmaps=inputs.heatmaps)
    readings = store.readings().filter(pl.col("split") == "train")
    index = pl.read_parquet(inputs.index)
    prefix = annotated_subset(readings.reverse(), index, 0.5)
    assert prefix.get_column("reading_id").to_list() == ["P3_000", "P3_001", "P3_002"]
    a = annotated_subset(readings, index, 0.5, how="random", seed=1)
    b = annotated_subset(readings, index, 0.5, how="random", seed=1)
    assert a.equals(b) and a.height == 3
    draws = {
        tuple(annotated_subset(readings, index, 0.5, how="random", seed=s)["reading_id"])
        for s in range(8)
    }
    assert len(draws) > 1
    assert annotated_subset(readings, index, 0.15).height == 1  # round(0.15 · 6)
    data = build_data(
        resolved("et", percentage_annotated=0.5),
        index=inputs.index,
        manifest=inputs.manifest,
        heatmaps=inputs.heatmaps,
    )
    assert data.train.n_annotated == 3


def test_collate_and_targets(inputs):
    data = build_data(
        resolved("et"), index=inputs.index, manifest=inputs.manifest, heatmaps=inputs.heatmaps
    )
    n = data.train.n_unannotated
    batch = collate([data.train[0], data.train[n], data.train[1], data.train[n + 2]])
    assert batch["images"].shape == (4, 1, 32, 32) and batch["images"].dtype == torch.uint8
    assert batch["annotated"].tolist() == [False, True, False, True]
    assert batch["map_index"].tolist() == [1, 3] and batch["maps"].shape == (2, 10, 32, 32)
    grid, dec = annotation_targets(batch["maps"].float(), 2, 16, 0.15)
    assert grid.shape == (2, 10, 2, 2) and grid.dtype == torch.bool and dec.shape == (2, 10, 16, 16)
    assert grid[0, 0].any() and not grid[0, 1:].any()
    plain = collate([data.train[0], data.train[1]])
    assert plain["maps"].shape == (0, 10, 32, 32) and plain["map_index"].numel() == 0


def test_pooling_threshold_is_max_then_strict():
    maps = torch.zeros(1, 1, 8, 8)
    maps[0, 0, 0, 0] = 0.16
    maps[0, 0, 7, 7] = 0.15
    grid, dec = annotation_targets(maps, 2, 4, 0.15)
    assert grid[0, 0].tolist() == [[True, False], [False, False]]
    assert float(dec[0, 0, 3, 3]) == pytest.approx(0.15)


def test_bad_annotation_files(tmp_path, inputs):
    bad = tmp_path / "heatmaps.h5"
    with h5py.File(bad, "w") as f:
        g = f.create_group("P3_x")
        g.attrs["dicom_id"] = "d020"
        g.attrs["split"] = "train"
        g.create_dataset("et", data=np.zeros((10, 32, 32), np.float16))
    with pytest.raises(DataFormatError, match=r"heatmaps\.h5.*no dataset 'et_labels'"):
        AnnotationStore("et", heatmaps=bad).readings()
    small = tmp_path / "small.h5"
    with h5py.File(small, "w") as f:
        for rid, dicom in (("P3_a", "d020"), ("P3_b", "d021")):
            g = f.create_group(rid)
            g.attrs["dicom_id"] = dicom
            g.attrs["split"] = "train"
            g.create_dataset("et", data=np.zeros((10, 16, 16), np.float16))
            g.create_dataset("et_labels", data=np.zeros(10, bool))
            g.create_dataset("report_labels", data=np.zeros(10, bool))
            g.create_dataset("full_report", data=np.zeros((16, 16), np.float16))
    data = build_data(resolved("et"), index=inputs.index, manifest=inputs.manifest, heatmaps=small)
    with pytest.raises(DataFormatError, match=r"images\.size"):
        data.train[data.train.n_unannotated]
