"""The data half of the tiny test config on a real single-node SLURM, through profiles/slurm.

Where SLURM is missing, the test installs it (Debian packages ``slurm-wlm`` and
``munge``; needs root and apt-get), writes ``/etc/slurm/slurm.conf`` for this machine
(its real CPUs and memory, no accounting database) and starts ``munged``,
``slurmctld`` and ``slurmd``; it stops the daemons it started when done. Without
slurmdbd there is no ``sacct``, so Snakemake's SLURM plugin is told to ask ``squeue``
for job states (``--slurm-status-command squeue``; slurm.conf keeps finished jobs
visible for ``MinJobAge`` seconds). The same run is made locally, and the outputs
must match. It skips, saying why, only where SLURM cannot be installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SLURM_CONF = Path("/etc/slurm/slurm.conf")
STATE = Path("/var/lib/landcover-slurm")
# a slurm.conf holding this is ours; the test file's path follows it (older runs: test_slurm.py)
MARK = "# written by landcover tests/"
TOOLS = ("sbatch", "squeue", "scontrol", "sinfo", "slurmctld", "slurmd", "munged", "munge")
UP_STATES = {"idle", "mixed", "allocated", "completing"}


def run(*command: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def tool(name: str) -> str | None:
    """Path of a SLURM or munge program (daemons live in /usr/sbin, not always on PATH)."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def missing_tools() -> list[str]:
    return [name for name in TOOLS if tool(name) is None]


def install_slurm() -> None:
    """Install slurm-wlm and munge with apt-get where missing; skip where it cannot."""
    if not missing_tools():
        return
    if os.geteuid() != 0:
        pytest.skip(
            f"SLURM is not installed ({missing_tools()} missing) and installing it "
            "needs root: apt-get install slurm-wlm munge"
        )
    if not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and there is no apt-get to install it with")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ("apt-get", "install", "-y", "-qq", "--no-install-recommends", "slurm-wlm", "munge")
    done = run(*install, timeout=600, env=env)
    if done.returncode != 0:  # a fresh machine has no package lists yet
        run("apt-get", "update", "-qq", timeout=600, env=env)
        done = run(*install, timeout=600, env=env)
    if done.returncode != 0 or missing_tools():
        pytest.skip(f"cannot install slurm-wlm and munge with apt-get: {done.stderr[-800:]}")


def munge_works() -> bool:
    credential = run("munge", "-n")
    return credential.returncode == 0 and run("unmunge", input=credential.stdout).returncode == 0


def start_munge() -> list[Path]:
    """Start munged unless it answers; return the pid file of a daemon started here."""
    if munge_works():
        return []
    socket_dir = Path("/run/munge")
    socket_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(socket_dir, "munge", "munge")
    if not Path("/etc/munge/munge.key").exists():
        run("runuser", "-u", "munge", "--", str(tool("mungekey")), "--create", check=True)
    run("runuser", "-u", "munge", "--", str(tool("munged")), check=True)
    wait_for(munge_works, "munged to answer")
    return [socket_dir / "munged.pid"]


def node_line() -> str:
    """This machine as slurm.conf sees it: ``NodeName=... CPUs=... RealMemory=...``."""
    return run(str(tool("slurmd")), "-C", check=True).stdout.splitlines()[0].strip()


def write_slurm_conf() -> bool:
    """Write the single-node slurm.conf unless another one is there; True if ours."""
    if SLURM_CONF.exists() and MARK not in SLURM_CONF.read_text():
        return False
    for folder in ("ctld", "d"):
        (STATE / folder).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SLURM_CONF.write_text(
        f"""{MARK}workflow/test_slurm.py: one node, this machine
ClusterName=landcover
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={STATE}/ctld
SlurmdSpoolDir={STATE}/d
SlurmctldPidFile={STATE}/slurmctld.pid
SlurmdPidFile={STATE}/slurmd.pid
SlurmctldLogFile={STATE}/slurmctld.log
SlurmdLogFile={STATE}/slurmd.log
# no cgroups, no accounting database (slurmdbd): job states come from squeue
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# finished jobs stay visible to squeue this long (the plugin's status checks need it)
MinJobAge=600
ReturnToService=2
MpiDefault=none
{node_line()} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""
    )
    return True


def node_states() -> set[str]:
    done = run("sinfo", "-h", "-o", "%T", timeout=20)
    return (
        {s.strip("*~#!%$@^-").lower() for s in done.stdout.split()}
        if done.returncode == 0
        else set()
    )


def wait_for(ready: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            log = STATE / "slurmctld.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.5)


def start_cluster(ours: bool) -> list[Path]:
    """Start slurmctld and slurmd unless the node is up; return pid files of those started."""
    if node_states() & UP_STATES:
        return []
    if not ours:
        pytest.skip(
            f"{SLURM_CONF} was not written by this test and its cluster does not answer "
            "(sinfo); start that cluster, or move the file away to let the test set one up"
        )
    started = []
    if run("scontrol", "ping", timeout=20).stdout.count("UP") == 0:
        run(str(tool("slurmctld")), check=True)
        started.append(STATE / "slurmctld.pid")
        wait_for(lambda: run("scontrol", "ping", timeout=20).stdout.count("UP") > 0, "slurmctld")
    if run("pgrep", "-F", str(STATE / "slurmd.pid")).returncode != 0:
        run(str(tool("slurmd")), check=True)
        started.append(STATE / "slurmd.pid")
    wait_for(lambda: bool(node_states()), "slurmd to register")
    if node_states() & {"down", "drained", "draining", "drain"}:
        host = node_line().split()[0].split("=")[1]
        run("scontrol", "update", f"NodeName={host}", "State=RESUME")
    wait_for(lambda: bool(node_states() & UP_STATES), "the node to be idle")
    return started


def stop(pid_file: Path) -> None:
    """Stop a daemon this test started, by the pid in its pid file."""
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        pass


@pytest.fixture(scope="module")
def slurm() -> Iterator[int]:
    """A SLURM cluster answering on this machine; yields the node's CPU count."""
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), (
        "snakemake-executor-plugin-slurm is not installed: `pip install -e .[all,test]` "
        "installs it (pyproject.toml)"
    )
    install_slurm()
    started = start_munge()
    ours = write_slurm_conf()
    started += start_cluster(ours)
    cpus = int(re.search(r"CPUs=(\d+)", node_line())[1])  # type: ignore[index]
    yield cpus
    for pid_file in reversed(started):
        stop(pid_file)


@pytest.fixture(scope="module")
def runs(
    slurm: int,
    tmp_path_factory: pytest.TempPathFactory,
    repo_root: Path,
    tiny_config,
    run_snakemake,
) -> dict:
    """The data half of the tiny config through SLURM and locally."""
    config = tiny_config()
    dirs = {}
    for name in ("slurm", "local"):
        dirs[name] = tmp_path_factory.mktemp(name)
        (dirs[name] / "config.yaml").write_text(yaml.safe_dump(config))
    cores = min(2, slurm)  # the largest job (a group of an area's jobs) fits the node
    start = time.monotonic()
    cluster = run_snakemake(
        dirs["slurm"],
        "--profile",
        str(repo_root / "profiles" / "slurm"),
        "--max-threads",
        str(cores),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        "data",
        cores=cores,
        timeout=600,
    )
    seconds = time.monotonic() - start
    assert cluster.returncode == 0, (cluster.stdout + cluster.stderr)[-5000:]
    local = run_snakemake(dirs["local"], "data", cores=cores, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    return {**dirs, "log": cluster.stdout + cluster.stderr, "seconds": seconds}


def test_jobs_went_through_slurm(runs, tiny_config):
    ids = re.findall(r"submitted with SLURM jobid (\d+)", runs["log"])
    # the demo bucket, one group job per area (acquire -> tile), the patch-index group
    assert len(ids) >= 1 + len(tiny_config()["areas"]), runs["log"][-3000:]
    logs = {p.stem: p for p in (runs["slurm"] / ".snakemake/slurm_logs").rglob("*.log")}
    for job in ids:
        assert job in logs, f"no SLURM log for job {job}"  # sbatch --output, kept on success
    states = run("squeue", "--states=all", "-h", "-o", "%i|%T", "-j", ",".join(ids)).stdout
    finished = dict(line.split("|") for line in states.split())
    assert all(finished.get(job, "COMPLETED") == "COMPLETED" for job in ids), states
    assert "tile_area" in "".join(p.read_text() for p in logs.values())
    print(f"SLURM data half: {len(ids)} SLURM jobs in {runs['seconds']:.0f} s")


def test_outputs_match_a_local_run(runs, tiny_config):
    slurm, local = runs["slurm"], runs["local"]
    weights = [
        json.loads((d / "results/patches/class_weights.json").read_text()) for d in (slurm, local)
    ]
    assert weights[0] == weights[1]
    for area in tiny_config()["areas"]:
        for name in ("image.tif", "labels.tif"):
            with (
                rasterio.open(slurm / f"results/aligned/{area}/{name}") as a,
                rasterio.open(local / f"results/aligned/{area}/{name}") as b,
            ):
                assert a.crs == b.crs and a.transform == b.transform and a.dtypes == b.dtypes
                assert a.nodata == b.nodata or (np.isnan(a.nodata) and np.isnan(b.nodata))
                assert np.array_equal(a.read(), b.read(), equal_nan=True)
    index = [gpd.read_parquet(d / "results/patches/index.parquet") for d in (slurm, local)]
    assert index[0].equals(index[1])
