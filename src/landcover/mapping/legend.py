"""Class names where GDAL and QGIS read them: a ``.aux.xml`` and a ``.qml`` beside a map.

A GeoTIFF holds a colour table but no class names that GDAL or QGIS show; both read
them from sidecar files named after the raster:

- ``{map}.tif.aux.xml`` (GDAL's PAM): the band's category names (``gdalinfo`` lists
  them as ``Categories``, indexed by pixel value) and a thematic raster attribute table
  (value, class name, red, green, blue, alpha; QGIS >= 3.30 and ArcGIS read it);
- ``{map}.qml``: a QGIS style (paletted renderer: value, colour and name per class),
  which QGIS applies when it opens the map, so its legend shows the names.

Torch-free: the data half (aligned labels) may write them too.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

Colour = tuple[int, int, int, int]

# GDAL's raster attribute table codes (gdal.h: GDALRATFieldType, GDALRATFieldUsage)
_INTEGER, _STRING = 0, 2
_USAGE = {"Value": 5, "Class": 2, "Red": 6, "Green": 7, "Blue": 8, "Alpha": 9}  # MinMax, Name


def legend_paths(raster: str | Path) -> tuple[Path, Path]:
    """The sidecars of ``raster``: its PAM file (``.tif.aux.xml``) and QGIS style (``.qml``)."""
    path = Path(raster)
    return path.with_name(path.name + ".aux.xml"), path.with_suffix(".qml")


def pam_xml(values: Sequence[int], names: Sequence[str], colours: Sequence[Colour]) -> str:
    """GDAL PAM XML of band 1: category names by pixel value and a thematic RAT."""
    band = ET.Element("PAMRasterBand", band="1")
    categories = ET.SubElement(band, "CategoryNames")
    by_value = dict(zip(values, names, strict=True))
    for value in range(max(values) + 1):
        ET.SubElement(categories, "Category").text = by_value.get(value, "")
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    for index, (field, usage) in enumerate(_USAGE.items()):
        defn = ET.SubElement(rat, "FieldDefn", index=str(index))
        ET.SubElement(defn, "Name").text = field
        ET.SubElement(defn, "Type").text = str(_STRING if field == "Class" else _INTEGER)
        ET.SubElement(defn, "Usage").text = str(usage)
    for row, (value, name, colour) in enumerate(zip(values, names, colours, strict=True)):
        element = ET.SubElement(rat, "Row", index=str(row))
        for cell in (value, name, *colour):
            ET.SubElement(element, "F").text = str(cell)
    root = ET.Element("PAMDataset")
    root.append(band)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def qml(values: Sequence[int], names: Sequence[str], colours: Sequence[Colour]) -> str:
    """A QGIS layer style: paletted renderer of band 1 with a value, colour and name per class."""
    root = ET.Element("qgis", version="3.28", styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe, "rasterrenderer", type="paletted", band="1", opacity="1", alphaBand="-1"
    )
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    for value, name, (r, g, b, a) in zip(values, names, colours, strict=True):
        ET.SubElement(
            palette,
            "paletteEntry",
            value=str(value),
            color=f"#{r:02x}{g:02x}{b:02x}",
            alpha=str(a),
            label=name,
        )
    ET.indent(root)
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        + ET.tostring(root, encoding="unicode")
        + "\n"
    )


def write_legend(
    raster: str | Path, values: Sequence[int], names: Sequence[str], colours: Sequence[Colour]
) -> tuple[Path, Path]:
    """Write the class names of a single-band class raster beside it (``.aux.xml``, ``.qml``).

    Write them before the raster is moved into place (its presence says they are complete);
    an existing sidecar is replaced.

    Args:
        raster: the raster's final path.
        values: the pixel value of each class (0-255).
        names: the class names, in the same order.
        colours: RGBA of each class.

    Returns:
        (PAM path, QGIS style path).

    """
    values = [int(v) for v in values]
    pam, style = legend_paths(raster)
    pam.write_text(pam_xml(values, names, colours))
    style.write_text(qml(values, names, colours))
    return pam, style
