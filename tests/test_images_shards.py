"""HDF5 image shards, their manifest, bad images, and the ShardDataset reader."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

from gazeloc.cli import main
from gazeloc.datasets.shards import ShardDataset
from gazeloc.errors import DataFormatError
from gazeloc.images.frame import load_frame
from gazeloc.images.index import build_image_list, write_image_list, write_index
from gazeloc.images.shards import (
    COMPRESSIONS,
    merge_shards,
    shard_name,
    shard_of,
    shard_rows,
    write_shard,
)

SIZE = 64
N_SHARDS = 3


@pytest.fixture(scope="module")
def images(tiny_synthetic) -> pl.DataFrame:
    return build_image_list(tiny_synthetic / "mimic-cxr-jpg", tiny_synthetic / "reflacx")


@pytest.fixture(scope="module")
def shards(tiny_synthetic, images, tmp_path_factory) -> Path:
    """Three shards of the tiny dataset, their manifest and the index."""
    out = tmp_path_factory.mktemp("shards")
    files, skipped = [], []
    for shard in range(N_SHARDS):
        path = out / "shards" / shard_name(shard, N_SHARDS)
        files.append(path)
        skipped.append(path.with_suffix(".skipped.csv"))
        write_shard(
            images,
            tiny_synthetic / "mimic-cxr-jpg",
            path,
            skipped[-1],
            shard=shard,
            n_shards=N_SHARDS,
            size=SIZE,
            workers=2 if shard == 0 else 1,
            progress=False,
        )
    merge_shards(files, skipped, out / "shards.parquet", out / "skipped.csv")
    images.write_parquet(out / "images.parquet")
    write_index(
        out / "images.parquet",
        tiny_synthetic / "mimic-cxr-jpg",
        tiny_synthetic / "reflacx",
        tiny_synthetic / "val_subjects.txt",
        out / "index.parquet",
        out / "counts.csv",
        out / "counts.md",
        progress=False,
    )
    return out


def test_shard_of_is_a_stable_hash():
    dicom = "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
    digest = hashlib.blake2b(dicom.encode(), digest_size=8).digest()
    assert shard_of(dicom, 64) == int.from_bytes(digest, "big") % 64
    assert shard_of(dicom, 64) == 39  # fixed forever: shards never move between runs
    assert shard_of(dicom, 1) == 0


def test_shards_partition_the_image_list(images):
    parts = [shard_rows(images, s, N_SHARDS) for s in range(N_SHARDS)]
    assert sum(p.height for p in parts) == images.height
    assert set().union(*(set(p["dicom_id"]) for p in parts)) == set(images["dicom_id"])
    assert all(p.height for p in parts)  # 30 images: every shard gets some
    with pytest.raises(ValueError):
        shard_rows(images, N_SHARDS, N_SHARDS)


def test_shard_content(tiny_synthetic, images, shards):
    root = tiny_synthetic / "mimic-cxr-jpg"
    by_id = {r["dicom_id"]: r for r in images.iter_rows(named=True)}
    seen = []
    for shard in range(N_SHARDS):
        with h5py.File(shards / "shards" / shard_name(shard, N_SHARDS), "r") as f:
            dset = f["images"]
            assert dset.dtype == np.uint8 and dset.shape[1:] == (SIZE, SIZE)
            assert dset.chunks == (1, SIZE, SIZE)
            assert dict(f.attrs)["size"] == SIZE
            assert f.attrs["compression"] == "blosc-lz4hc"
            assert f.attrs["shard"] == shard and f.attrs["n_shards"] == N_SHARDS
            assert f.attrs["dct_scaling"] and "blake2b" in f.attrs["hash"]
            assert f.attrs["n_images"] == dset.shape[0]
            ids = [v.decode() for v in f["dicom_id"][()]]
            assert [shard_of(d, N_SHARDS) for d in ids] == [shard] * len(ids)
            splits = [v.decode() for v in f["split"][()]]
            for i, dicom in enumerate(ids):
                row = by_id[dicom]
                assert splits[i] == row["official_split"]
                assert (f["width"][i], f["height"][i]) == (row["width"], row["height"])
                assert (dset[i] == load_frame(root / row["path"], SIZE)).all()
            seen += ids
    assert sorted(seen) == sorted(images["dicom_id"])
    assert list((shards / "shards").glob(".*")) == []  # no temporary files left


def test_manifest_and_skipped(shards):
    manifest = pl.read_parquet(shards / "shards.parquet")
    assert manifest.columns == ["dicom_id", "shard", "file", "row", "official_split"]
    assert manifest["dicom_id"].is_unique().all()
    for shard, file in manifest.select("shard", "file").unique().iter_rows():
        assert file == f"shards/{shard_name(shard, N_SHARDS)}"
    skipped = pl.read_csv(shards / "skipped.csv")
    assert skipped.columns == ["shard", "dicom_id", "path", "reason"] and skipped.height == 0


def test_merge_needs_a_complete_set(shards, tmp_path):
    files = [shards / "shards" / shard_name(s, N_SHARDS) for s in range(2)]
    with pytest.raises(ValueError, match="missing"):
        merge_shards(files, [], tmp_path / "m.parquet", tmp_path / "s.csv")
    assert not (tmp_path / "m.parquet").exists()


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_compressions_round_trip(tiny_synthetic, images, tmp_path, compression):
    out = tmp_path / "s.h5"
    summary = write_shard(
        images.head(3),
        tiny_synthetic / "mimic-cxr-jpg",
        out,
        shard=0,
        n_shards=1,
        size=32,
        compression=compression,
        progress=False,
    )
    assert summary.n_images == 3
    import hdf5plugin  # noqa: F401

    with h5py.File(out, "r") as f:
        assert f.attrs["compression"] == compression
        first = images.row(0, named=True)
        expected = load_frame(tiny_synthetic / "mimic-cxr-jpg" / first["path"], 32)
        assert (f["images"][0] == expected).all()


# --- bad images ----------------------------------------------------------------------------


def _bad_tree(tmp_path: Path, kind: str) -> tuple[Path, pl.DataFrame, Path]:
    """Two good images and one bad one, all in one shard."""
    root = tmp_path / "mimic"
    rows = []
    for n in range(3):
        dicom = f"{n:08x}-00000000-11111111-22222222-33333333"
        rel = f"files/p19/p19999991/s5999990{n}/{dicom}.jpg"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.append(
            {
                "dicom_id": dicom,
                "path": rel,
                "width": 120,
                "height": 100,
                "official_split": "train",
            }
        )
        image = np.full((100, 120), 40 * (n + 1), dtype=np.uint8)
        if n != 1:
            Image.fromarray(image).save(path, format="JPEG", quality=95)
            continue
        bad = path
        if kind == "missing":
            pass
        elif kind == "truncated":
            Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 120), np.uint8)).save(
                path, format="JPEG"
            )
            path.write_bytes(path.read_bytes()[:600])
        elif kind == "corrupt":
            path.write_bytes(b"this is not a JPEG file at all" * 10)
        elif kind == "rgb":
            Image.new("RGB", (120, 100), (1, 2, 3)).save(path, format="JPEG")
        elif kind == "16-bit":
            Image.fromarray(np.full((100, 120), 1000, np.uint16)).save(path, format="PNG")
        elif kind == "size":
            Image.fromarray(np.zeros((90, 120), np.uint8)).save(path, format="JPEG")
    return root, pl.DataFrame(rows), bad


BAD_KINDS = ("missing", "truncated", "corrupt", "rgb", "16-bit", "size")


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_image_fails_naming_the_file(tmp_path, kind):
    root, rows, bad = _bad_tree(tmp_path, kind)
    out = tmp_path / "out" / "s.h5"
    with pytest.raises(DataFormatError) as info:
        write_shard(rows, root, out, out.with_suffix(".csv"), size=32, progress=False)
    assert str(bad) in str(info.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_image_skipped_and_listed(tmp_path, kind):
    root, rows, bad = _bad_tree(tmp_path, kind)
    out = tmp_path / "s.h5"
    summary = write_shard(
        rows, root, out, tmp_path / "s.csv", size=32, on_bad_image="skip", progress=False
    )
    assert summary.n_images == 2
    skipped = pl.read_csv(tmp_path / "s.csv")
    assert skipped["dicom_id"].to_list() == [rows["dicom_id"][1]]
    assert skipped["path"].to_list() == [str(bad)]
    assert skipped["reason"][0]
    with h5py.File(out, "r") as f:
        assert f["images"].shape == (2, 32, 32)
        assert [v.decode() for v in f["dicom_id"][()]] == [rows["dicom_id"][0], rows["dicom_id"][2]]
        assert f["images"][1, 16, 16] == 120  # the third image (value 120) follows the first
        assert f.attrs["n_skipped"] == 1


def test_cli_shard_fail_and_skip(tmp_path, capsys):
    root, rows, bad = _bad_tree(tmp_path, "corrupt")
    rows.write_parquet(tmp_path / "images.parquet")
    base = [
        "shard", "--images", str(tmp_path / "images.parquet"), "--mimic", str(root),
        "--shard", "000", "--shards", "001", "--size", "32",
    ]  # fmt: skip
    out = tmp_path / "shards" / shard_name(0, 1)
    skipped = out.with_suffix(".skipped.csv")
    code = main([*base, "--out", str(out), "--skipped", str(skipped)])
    assert code == 2
    assert str(bad) in capsys.readouterr().err
    assert not out.exists() and not skipped.exists()
    code = main(
        [*base, "--on-bad-image", "skip", "--workers", "2", "--out", str(out), "--skipped",
         str(skipped)]
    )  # fmt: skip
    assert code == 0
    code = main(
        ["shard-merge", "--shards", str(out), "--skipped", str(skipped), "--manifest",
         str(tmp_path / "shards.parquet"), "--skipped-out", str(tmp_path / "skipped.csv")]
    )  # fmt: skip
    assert code == 0
    merged = pl.read_csv(tmp_path / "skipped.csv")
    assert merged.select("shard", "dicom_id").rows() == [(0, rows["dicom_id"][1])]
    assert pl.read_parquet(tmp_path / "shards.parquet").height == 2


# --- ShardDataset --------------------------------------------------------------------------


def test_dataset_items(shards, tiny_synthetic, images):
    ds = ShardDataset(shards / "shards.parquet")
    assert len(ds) == images.height
    item = ds[3]
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (1, SIZE, SIZE)
    row = images.filter(pl.col("dicom_id") == item["dicom_id"]).row(0, named=True)
    expected = load_frame(tiny_synthetic / "mimic-cxr-jpg" / row["path"], SIZE)
    assert (item["image"][0].numpy() == expected).all()
    assert item["index"] == 3
    assert ds[-1]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_dataset_opens_nothing_in_init(shards, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("HDF5 opened in __init__")

    monkeypatch.setattr(h5py, "File", refuse)
    ds = ShardDataset(shards / "shards.parquet")
    assert ds._handles == {}
    monkeypatch.undo()
    ds[0]
    assert len(ds._handles) == 1
    clone = pickle.loads(pickle.dumps(ds))  # a worker's copy starts without handles
    assert clone._handles == {}
    assert (clone[0]["image"] == ds[0]["image"]).all()


def test_dataset_given_and_shard_order(shards):
    manifest = pl.read_parquet(shards / "shards.parquet")
    wanted = manifest["dicom_id"].to_list()[::-1]
    given = ShardDataset(shards / "shards.parquet", wanted)
    assert list(given.dicom_ids) == wanted
    ordered = ShardDataset(shards / "shards.parquet", wanted, order="shard")
    keys = manifest.select("dicom_id", "shard", "row").rows()
    position = {d: (s, r) for d, s, r in keys}
    assert [position[d] for d in ordered.dicom_ids] == sorted(position.values())
    assert set(ordered.dicom_ids) == set(wanted)
    i = given.dicom_ids.index(ordered.dicom_ids[0])
    assert (given[i]["image"] == ordered[0]["image"]).all()


def test_dataset_missing_ids(shards, caplog):
    ids = ["ffffffff-ffffffff-ffffffff-ffffffff-ffffffff"]
    with pytest.raises(KeyError, match=r"skipped\.csv"):
        ShardDataset(shards / "shards.parquet", ids)
    present = pl.read_parquet(shards / "shards.parquet")["dicom_id"][0]
    ds = ShardDataset(shards / "shards.parquet", [*ids, present], missing="drop")
    assert ds.dicom_ids == (present,)
    with pytest.raises(ValueError, match="twice"):
        ShardDataset(shards / "shards.parquet", [present, present])


def test_dataset_from_index(shards):
    index = pl.read_parquet(shards / "index.parquet")
    train = ShardDataset.from_index(
        shards / "index.parquet", shards / "shards.parquet", split="train"
    )
    expected = index.filter(pl.col("in_mimic") & (pl.col("split") == "train"))["dicom_id"]
    assert list(train.dicom_ids) == expected.to_list()
    annotated = ShardDataset.from_index(
        shards / "index.parquet", shards / "shards.parquet", subset="reflacx"
    )
    assert set(annotated.dicom_ids) == set(index.filter(pl.col("in_reflacx"))["dicom_id"])


def test_dataloader_with_workers(shards):
    ds = ShardDataset(shards / "shards.parquet", order="shard")
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=True)
    seen = {}
    for batch in loader:
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (1, SIZE, SIZE)
        for dicom, index, image in zip(
            batch["dicom_id"], batch["index"], batch["image"], strict=True
        ):
            seen[dicom] = (int(index), image)
    assert set(seen) == set(ds.dicom_ids)
    for dicom, (index, image) in list(seen.items())[:5]:
        assert (ds[index]["image"] == image).all() and ds.dicom_ids[index] == dicom


def test_cli_image_list(tiny_synthetic, tmp_path):
    code = main(
        ["image-list", "--mimic", str(tiny_synthetic / "mimic-cxr-jpg"), "--reflacx",
         str(tiny_synthetic / "reflacx"), "--out", str(tmp_path / "images.parquet")]
    )  # fmt: skip
    assert code == 0
    n = write_image_list(
        tiny_synthetic / "mimic-cxr-jpg", tiny_synthetic / "reflacx", tmp_path / "again.parquet"
    )
    assert pl.read_parquet(tmp_path / "images.parquet").equals(
        pl.read_parquet(tmp_path / "again.parquet")
    )
    assert n == pl.read_parquet(tmp_path / "images.parquet").height


@pytest.mark.parametrize("command", ["image-list", "index", "shard", "shard-merge"])
def test_subcommands_have_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: gazeloc " + command in capsys.readouterr().out
