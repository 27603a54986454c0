# Portable models: a segmentation network as ONNX with a STAC MLM item (the `onnx`
# target, not part of `all`).
import re

# Only networks export (the per-pixel and ensemble kinds have no ONNX graph here).
ONNX_EXPERIMENTS = [
    name
    for name, experiment in EXPERIMENTS.items()
    if experiment["model"]["kind"] == "segmentation"
]


rule export_model:
    input:
        model=MODEL,
    output:
        onnx="results/models/{experiment}/{device}/model.onnx",
        item="results/models/{experiment}/{device}/mlm.json",
    log:
        "logs/export_model/{experiment}/{device}.log",
    wildcard_constraints:
        experiment="|".join(map(re.escape, ONNX_EXPERIMENTS)) or "(?!)",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=3000,
    params:
        classes=lookup(dpath="classes", within=config),
        licence=lookup(dpath="export/licence", within=config),
    script:
        "../scripts/export_model.py"
