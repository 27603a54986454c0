"""Class names beside a map (mapping.legend): read back by GDAL itself and as a QGIS style."""

from __future__ import annotations

import ctypes
import ctypes.util
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from landcover.classes import ClassMap
from landcover.mapping.legend import legend_paths
from landcover.mapping.scene import predict_scene
from landcover.models.segmentation.scorer import SegmentationScorer

BANDS = ["B02", "B03", "B04"]
CLASSES = [
    {"name": "tree", "codes": [10], "colour": "#006400"},
    {"name": "water", "codes": [80], "colour": "#0064C8"},
    {"name": "built_up", "codes": [50, 51], "colour": "#FA0000"},
]
CLASS_MAP = ClassMap.from_config(CLASSES)


def libgdal() -> ctypes.CDLL:
    """The GDAL that rasterio runs on (its wheel's copy, else the system's)."""
    libs = Path(rasterio.__file__).parent.parent / "rasterio.libs"
    found = sorted(libs.glob("libgdal*.so*")) if libs.is_dir() else []
    name = str(found[0]) if found else ctypes.util.find_library("gdal")
    if name is None:
        pytest.skip("no libgdal to ask")
    lib = ctypes.CDLL(name)
    lib.GDALOpen.restype = ctypes.c_void_p
    lib.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.GDALGetRasterBand.restype = ctypes.c_void_p
    lib.GDALGetRasterBand.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
    lib.GDALGetDefaultRAT.restype = ctypes.c_void_p
    lib.GDALGetDefaultRAT.argtypes = [ctypes.c_void_p]
    lib.GDALRATGetRowCount.argtypes = [ctypes.c_void_p]
    lib.GDALRATGetColumnCount.argtypes = [ctypes.c_void_p]
    lib.GDALRATGetNameOfCol.restype = ctypes.c_char_p
    lib.GDALRATGetNameOfCol.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.GDALRATGetValueAsString.restype = ctypes.c_char_p
    lib.GDALRATGetValueAsString.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.GDALClose.argtypes = [ctypes.c_void_p]
    return lib


def gdal_classes(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Category names and attribute table rows of band 1, as GDAL (gdalinfo) reads them."""
    lib = libgdal()
    lib.GDALAllRegister()
    dataset = lib.GDALOpen(str(path).encode(), 0)
    assert dataset, f"GDAL cannot open {path}"
    try:
        band = lib.GDALGetRasterBand(dataset, 1)
        rat, rows = lib.GDALGetDefaultRAT(band), []  # first: it loads the PAM file
        names, pointer = [], lib.GDALGetRasterCategoryNames(band)
        while pointer and pointer[len(names)] is not None:
            names.append(pointer[len(names)].decode())
        if rat:
            cols = [
                lib.GDALRATGetNameOfCol(rat, c).decode()
                for c in range(lib.GDALRATGetColumnCount(rat))
            ]
            for r in range(lib.GDALRATGetRowCount(rat)):
                cells = [lib.GDALRATGetValueAsString(rat, r, c).decode() for c in range(len(cols))]
                rows.append(dict(zip(cols, cells, strict=True)))
        return names, rows
    finally:
        lib.GDALClose(dataset)


def pixel_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))


def write_image(path: Path, height: int = 70, width: int = 90) -> Path:
    img = np.random.default_rng(1).uniform(0, 0.5, (3, height, width)).astype(np.float32)
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 3,
        "height": height,
        "width": width,
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 300000, 0, -10, 1600020),
        "nodata": float("nan"),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
        for band, name in enumerate(BANDS, start=1):
            dst.set_band_description(band, name)
    return path


def map_scene(tmp_path: Path, values: str) -> Path:
    meta = {"mean": [0.1, 0.2, 0.3], "std": [0.05, 0.1, 0.2], "classes": list(CLASS_MAP.names)}
    scorer = SegmentationScorer(pixel_net().eval(), {**meta, "bands": BANDS}, torch.device("cpu"))
    scorer.window_multiple = 1
    out = tmp_path / "map.tif"
    predict_scene(
        scorer,
        write_image(tmp_path / "image.tif"),
        out,
        classes=CLASS_MAP,
        values=values,
        window=32,
        overlap=8,
        batch_size=4,
        progress=False,
    )
    return out


@pytest.mark.parametrize(("values", "expected"), [("codes", [10, 80, 50]), ("indices", [0, 1, 2])])
def test_gdal_reads_the_class_names_of_a_map(tmp_path, values, expected):
    out = map_scene(tmp_path, values)
    assert cog_validate(str(out), quiet=True)[0]
    names, rows = gdal_classes(out)
    assert len(names) == max(expected) + 1
    assert [names[v] for v in expected] == ["tree", "water", "built_up"]
    assert {n for i, n in enumerate(names) if i not in expected} <= {""}
    assert [(int(r["Value"]), r["Class"]) for r in rows] == list(
        zip(expected, ["tree", "water", "built_up"], strict=True)
    )
    assert [(int(r["Red"]), int(r["Green"]), int(r["Blue"])) for r in rows] == [
        (0, 100, 0),
        (0, 100, 200),
        (250, 0, 0),
    ]
    with rasterio.open(out) as src:  # the colour table agrees with the names
        cmap = src.colormap(1)
    assert [cmap[v][:3] for v in expected] == [(0, 100, 0), (0, 100, 200), (250, 0, 0)]


def test_qgis_style_beside_the_map_lists_each_class(tmp_path):
    out = map_scene(tmp_path, "codes")
    pam, style = legend_paths(out)
    assert pam == tmp_path / "map.tif.aux.xml"
    assert style == tmp_path / "map.qml"
    root = ET.parse(style).getroot()
    renderer = root.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted"
    assert renderer.get("band") == "1"
    entries = [
        (int(e.get("value")), e.get("label"), e.get("color").lower(), e.get("alpha"))
        for e in renderer.iter("paletteEntry")
    ]
    assert entries == [
        (10, "tree", "#006400", "255"),
        (80, "water", "#0064c8", "255"),
        (50, "built_up", "#fa0000", "255"),
    ]
    assert not list(tmp_path.glob(".map.*"))  # no temporary left beside the map
