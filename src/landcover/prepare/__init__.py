"""From raw windows to training data.

Align (one grid), tiling (patches), split (spatial), weights (class weights) and the
patch store (open and check).
"""
