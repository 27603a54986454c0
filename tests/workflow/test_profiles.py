"""Cluster profiles: valid YAML, keys Snakemake knows, rules that exist, GPUs declared.

The Kubernetes profile cannot run here (no cluster, no bucket; even a dry run asks the
storage for its files): it is checked against Snakemake's own argument parser. The
SLURM profile also plans a dry run; test_slurm.py runs it on a real SLURM.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]  # the repository
PROFILES = ("slurm", "kubernetes")
PLUGINS = {  # option prefix -> the package providing it
    "slurm": "snakemake_executor_plugin_slurm",
    "kubernetes": "snakemake_executor_plugin_kubernetes",
    "storage-s3": "snakemake_storage_plugin_s3",
}


def profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def plugin_of(key: str, value: object = None) -> str | None:
    """The plugin package a profile entry needs, if any."""
    if key in ("executor", "default-storage-provider"):
        key = f"{'storage-' if key != 'executor' else ''}{value}-"
    for prefix, package in PLUGINS.items():
        if key.startswith(f"{prefix}-"):
            return package
    return None


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def cli_options() -> set[str]:
    """Long options of Snakemake's command line, with the installed plugins' options."""
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    return {opt[2:] for opt in parser._option_string_actions if opt.startswith("--")}


def rule_blocks() -> dict[str, str]:
    """Each rule's text in rules/*.smk, by rule name."""
    blocks = {}
    for path in sorted((ROOT / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):", path.read_text(), flags=re.MULTILINE)
        blocks.update(dict(zip(parts[1::2], parts[2::2], strict=True)))
    return blocks


@pytest.mark.parametrize("name", PROFILES)
def test_profile_is_a_yaml_mapping_of_known_options(name):
    config = profile(name)
    assert isinstance(config, dict) and config
    known = cli_options()
    for key, value in config.items():
        package = plugin_of(key, value)
        if package and not installed(package):
            continue  # a plugin's option: checked where the plugin is installed
        assert key in known, f"profiles/{name}: '{key}' is not a Snakemake option"
    if not installed(PLUGINS[name]):
        pytest.skip(f"{PLUGINS[name]} is not installed: its options were not checked")


@pytest.mark.parametrize("name", PROFILES)
def test_profile_resources_and_groups_name_real_rules(name):
    config = profile(name)
    rules = rule_blocks()
    for rule, resources in config.get("set-resources", {}).items():
        assert rule in rules, f"profiles/{name}: set-resources names unknown rule '{rule}'"
        assert isinstance(resources, dict) and resources
    for entry in config.get("groups", []):
        rule, group = entry.split("=")
        assert rule in rules and group, f"profiles/{name}: bad group entry '{entry}'"
    for key in ("default-resources",):
        assert "mem_mb" in config[key]  # restated in full: a profile key replaces another's


def test_kubernetes_profile_names_the_gpu_maker_of_every_gpu_rule():
    # the plugin refuses a job that has a `gpu` resource but no gpu_manufacturer
    config = profile("kubernetes")
    gpu_rules = [name for name, text in rule_blocks().items() if re.search(r"\bgpu=", text)]
    assert {"train_model", "predict_area"} <= set(gpu_rules)
    for rule in gpu_rules:
        maker = config["set-resources"].get(rule, {}).get("gpu_manufacturer")
        assert maker in ("nvidia", "amd"), f"{rule} declares gpu but has no gpu_manufacturer"
    assert config["default-storage-provider"] == "s3"
    assert config["default-storage-prefix"].startswith("s3://")


def test_slurm_profile_asks_for_gpus_only_through_the_plugins_resources():
    config = profile("slurm")
    text = (ROOT / "profiles/slurm/config.yaml").read_text()
    assert config["executor"] == "slurm"
    assert "gres" not in yaml.safe_dump(config)  # gpu/gpu_model, not a raw --gres
    assert "slurm_account" in text and "slurm_partition" in text and "gpu_model" in text


@pytest.fixture
def plan(run_snakemake):
    """``plan(workdir, *args)``: a dry run with the SLURM profile in an empty workdir
    (results/ of the clone ignored)."""

    def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
        return run_snakemake(
            workdir,
            "--profile",
            "profiles/slurm",
            "-n",
            *args,
            config=ROOT / "config/config.yaml",
            cores=2,
            timeout=120,
        )

    return run


@pytest.mark.slow
def test_slurm_profile_plans_grouped_jobs_with_runtimes(tmp_path, plan):
    if not installed(PLUGINS["slurm"]):
        pytest.skip("snakemake-executor-plugin-slurm is not installed")
    run = plan(tmp_path, "models")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "group job area_data" in run.stdout.lower()
    train = run.stdout.split("rule train_model:")[1].split("\n\n")[0]
    assert "runtime=720" in train and "mem_mb=6000" in train


@pytest.mark.slow
def test_slurm_profile_default_runtime_read_alone(tmp_path, plan):
    # the profile's own default runtime, read alone (profiles/default, the workflow
    # profile, replaces default-resources when both are read)
    if not installed(PLUGINS["slurm"]):
        pytest.skip("snakemake-executor-plugin-slurm is not installed")
    run = plan(tmp_path, "--workflow-profile", "none", "data")
    assert run.returncode == 0, run.stderr[-3000:]
    demo = run.stdout.split("rule make_demo_bucket:")[1].split("\n\n")[0]
    assert "runtime=60" in demo
