"""landcover: from raw satellite imagery to land-cover maps.

All logic of the Snakemake workflow lives here; rules and scripts only call it.
Modules follow rasterio's rule: I/O at the edges (:mod:`landcover.io`), pure
array functions inside.
"""

__version__ = "0.1.0"
