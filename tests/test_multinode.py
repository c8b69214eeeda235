"""Several machines, restarts and timeouts, through scripts/train.sh on the CPU (gloo, loopback only).

Two torchrun agents with one process each stand for two machines. Each agent is pinned to one core and the
one-machine reference run's two processes share two cores, so every process computes with one thread in
both (the number of threads changes the float rounding of some CPU kernels).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from relation_testing import ROOT, SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, free_port
from rebalance_hca.engine.checkpoint import LAST_CHECKPOINT_FILE
from rebalance_hca.utils.comm import FailureReports

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and pins cores")

TEST_DATASET = "VG_stanford_filtered_with_attribute_test"
LAUNCH_VARIABLES = ("NUM_GPUS", "NGPUS", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "RDZV_ENDPOINT",
                    "RDZV_ID", "MAX_RESTARTS", "RDZV_TIMEOUT", "TORCHRUN")
MAX_ITER = 8
CHECKPOINT_PERIOD = 3
DIST_TIMEOUT = 8
RDZV_TIMEOUT = 3
SLACK = 15  # seconds past DIST_TIMEOUT: the failure reports' wait (3 s), torch's exit (~4 s), a loaded machine
CORES = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
HOST = socket.gethostname()


def _tool_args(data_dir: str, *overrides: str) -> list[str]:
    return [*TINY_RELATION_OPTS, "DATASETS.DATA_DIR", data_dir, "GLOVE_DIR", os.path.join(data_dir, "vg"),
            "SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", str(CHECKPOINT_PERIOD),
            "SOLVER.WARMUP_ITERS", "2", "SOLVER.TO_VAL", "False", *overrides]


def _environment(output_dir: str, **variables: str) -> dict[str, str]:
    """This process's environment with only the given launch variables, the synthetic config and OUTPUT_DIR."""
    environment = {name: value for name, value in os.environ.items() if name not in LAUNCH_VARIABLES}
    environment.update(CONFIG=SYNTHETIC_HCA_CONFIG, PYTHON_BIN=sys.executable, OUTPUT_DIR=output_dir, **variables)
    return environment


def _start(command: list[str], environment: dict[str, str], log_path: str, cores: list[int]) -> subprocess.Popen:
    """``command`` in the background on ``cores``, its output in ``log_path``."""
    with open(log_path, "w", encoding="utf-8") as log:
        return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.sched_setaffinity(0, cores))


def _train_command(*arguments: str) -> list[str]:
    """scripts/train.sh for PredCls stage 1; its pid becomes the launcher's (it execs), the workers' parent."""
    return ["bash", "scripts/train.sh", "predcls", "1", *arguments]


def _two_machines(command: list[str], output_dir: str, tmp_path, **variables: str) -> list[subprocess.Popen]:
    """``command`` as two agents of one process and one core each, meeting at a c10d rendezvous on 127.0.0.1."""
    environment = _environment(output_dir, NUM_GPUS="1", NNODES="2", RDZV_ENDPOINT=f"127.0.0.1:{free_port()}",
                               RDZV_ID=f"test{os.getpid()}", **variables)
    return [_start(command, environment, str(tmp_path / f"machine{index}.log"), [CORES[index % len(CORES)]])
            for index in range(2)]


def _output(tmp_path) -> str:
    return "\n".join((tmp_path / f"machine{index}.log").read_text() for index in range(2))


def _proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state, parent pid, ...); [] once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stream:
            return stream.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _is_running(pid: int) -> bool:
    fields = _proc_stat(pid)
    return bool(fields) and fields[0] != "Z"


def _worker_of_rank(agents: list[subprocess.Popen], rank: int) -> tuple[subprocess.Popen, int]:
    """(the agent, the pid) of the worker of ``rank``: the agents' child whose environment says RANK=rank."""
    for agent in agents:
        for entry in filter(str.isdigit, os.listdir("/proc")):
            fields = _proc_stat(int(entry))
            if fields and int(fields[1]) == agent.pid:
                try:
                    with open(f"/proc/{entry}/environ", "rb") as stream:
                        variables = stream.read().split(b"\0")
                except OSError:
                    continue
                if f"RANK={rank}".encode() in variables:
                    return agent, int(entry)
    raise AssertionError(f"no worker of rank {rank} under the agents {[agent.pid for agent in agents]}")


def _wait_for_checkpoint(output_dir: str, agents: list[subprocess.Popen], timeout: float = 300) -> None:
    pointer = os.path.join(output_dir, LAST_CHECKPOINT_FILE)
    deadline = time.monotonic() + timeout
    while not os.path.exists(pointer):
        assert time.monotonic() < deadline and all(agent.poll() is None for agent in agents), "no checkpoint came"
        time.sleep(0.05)


def _assert_same_weights(reference_dir: str, output_dir: str) -> None:
    reference, other = (torch.load(os.path.join(folder, "model_final.pth"), map_location="cpu",
                                   weights_only=True)["model"] for folder in (reference_dir, output_dir))
    assert reference.keys() == other.keys()
    for name, value in reference.items():
        assert torch.equal(value, other[name]), name


def _metrics(output_dir: str) -> dict[str, float]:
    with open(os.path.join(output_dir, "inference", TEST_DATASET, "test_results.json"), encoding="utf-8") as stream:
        results = json.load(stream)
    return {key: value for key, value in results.items() if key.startswith(("R@", "mR@", "ng-R@", "A@", "zR@"))}


@pytest.fixture(scope="module")
def one_machine_run(tiny_synthvg, tmp_path_factory) -> str:
    """Stage 1 trained and tested by two processes on one machine (the reference); returns its OUTPUT_DIR."""
    folder = tmp_path_factory.mktemp("one_machine")
    output_dir = str(folder / "run")
    process = _start(_train_command(*_tool_args(tiny_synthvg)), _environment(output_dir, NUM_GPUS="2"),
                     str(folder / "train.log"), CORES[:2])
    assert process.wait(timeout=600) == 0, (folder / "train.log").read_text()[-3000:]
    return output_dir


@pytest.mark.slow
def test_two_machines_at_a_c10d_rendezvous_equal_one_machine(tiny_synthvg, tmp_path, one_machine_run):
    output_dir = str(tmp_path / "run")
    agents = _two_machines(_train_command(*_tool_args(tiny_synthvg)), output_dir, tmp_path)
    assert [agent.wait(timeout=600) for agent in agents] == [0, 0], _output(tmp_path)[-4000:]
    _assert_same_weights(one_machine_run, output_dir)
    reference = _metrics(one_machine_run)
    assert reference and _metrics(output_dir) == reference


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_the_run_resumes_exactly(tiny_synthvg, tmp_path, one_machine_run):
    output_dir = str(tmp_path / "run")
    agents = _two_machines(_train_command(*_tool_args(tiny_synthvg, "--skip-test")), output_dir, tmp_path,
                           MAX_RESTARTS="1")
    _wait_for_checkpoint(output_dir, agents)
    os.kill(_worker_of_rank(agents, 1)[1], signal.SIGKILL)
    assert not os.path.exists(os.path.join(output_dir, "model_final.pth")), "killed too late to test a restart"
    assert [agent.wait(timeout=600) for agent in agents] == [0, 0], _output(tmp_path)[-4000:]
    with open(os.path.join(output_dir, "log.txt"), encoding="utf-8") as stream:
        resumed = [int(line.rsplit(" ", 1)[1]) for line in stream if "Resumed from" in line]
    assert resumed and resumed[0] >= CHECKPOINT_PERIOD  # it lost no more than CHECKPOINT_PERIOD iterations
    _assert_same_weights(one_machine_run, output_dir)


@pytest.mark.slow
def test_a_frozen_worker_stops_the_other_within_dist_timeout(tiny_synthvg, tmp_path):
    output_dir = str(tmp_path / "run")
    agents = _two_machines(_train_command(*_tool_args(tiny_synthvg, "--skip-test", "SOLVER.MAX_ITER", "500",
                                                      "DIST_TIMEOUT", str(DIST_TIMEOUT))),
                           output_dir, tmp_path, MAX_RESTARTS="0")
    frozen = None
    try:
        _wait_for_checkpoint(output_dir, agents)
        survivor_agent, survivor = _worker_of_rank(agents, 0)
        frozen = _worker_of_rank(agents, 1)[1]
        os.kill(frozen, signal.SIGSTOP)
        frozen_at = time.monotonic()
        while _is_running(survivor) and time.monotonic() - frozen_at < DIST_TIMEOUT + SLACK:
            time.sleep(0.05)
        stopped_after = time.monotonic() - frozen_at
        assert survivor_agent.wait(timeout=60) != 0
    finally:
        if frozen is not None:
            os.kill(frozen, signal.SIGKILL)
        for agent in agents:
            agent.wait(timeout=120)
    assert DIST_TIMEOUT - 1 <= stopped_after < DIST_TIMEOUT + SLACK, stopped_after
    with open(os.path.join(output_dir, "log.txt"), encoding="utf-8") as stream:
        log = stream.read()
    assert f"rank 0 of 2 ({HOST}) stopped: RuntimeError" in log and "No report from rank 1" in log
    assert all(agent.returncode != 0 for agent in agents)


# The relation training tool, but rank 1 raises at its second iteration.
RAISING_TOOL = textwrap.dedent("""
    import os
    import sys

    sys.path.insert(0, {tests!r})
    from tool_loading import load_tool
    from rebalance_hca.engine.trainer import Trainer
    from rebalance_hca.utils.cli import run_tool

    original_step = Trainer.run_step

    def step_that_fails_on_rank_1(self, images, targets):
        if self.iteration == 2 and os.environ["RANK"] == "1":
            raise ValueError("injected failure on rank 1")
        original_step(self, images, targets)

    Trainer.run_step = step_that_fails_on_rank_1
    run_tool(load_tool("relation_train_net").main)
""")


@pytest.mark.slow
def test_a_rank_that_raises_is_named_by_the_other_and_by_torchrun(tiny_synthvg, tmp_path):
    tool = tmp_path / "raising_tool.py"
    tool.write_text(RAISING_TOOL.format(tests=os.path.join(ROOT, "tests")))
    output_dir = str(tmp_path / "run")
    launcher = [sys.executable, "-m", "rebalance_hca.engine.torchrun"]
    agents = _two_machines([*launcher, "--nproc_per_node=1", "--nnodes=2", "--rdzv_backend=c10d",
                            f"--rdzv_endpoint=127.0.0.1:{free_port()}", "--rdzv_id=raising", str(tool),
                            "--config-file", SYNTHETIC_HCA_CONFIG, *_tool_args(tiny_synthvg, "--skip-test"),
                            "OUTPUT_DIR", output_dir], output_dir, tmp_path)
    codes = [agent.wait(timeout=600) for agent in agents]
    assert all(code != 0 for code in codes)
    with open(os.path.join(output_dir, "log.txt"), encoding="utf-8") as stream:
        log = stream.read()
    assert f"first received first: rank 1 ({HOST}): ValueError: injected failure on rank 1; this rank" in log
    output = _output(tmp_path)
    assert f"rank 1 of 2 ({HOST}) stopped: ValueError: injected failure on rank 1" in output
    assert "Root Cause (first observed failure)" in output and "ValueError: injected failure on rank 1" in output


def _launch_failure(command: list[str], environment: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stderr.strip().splitlines()[-1], time.monotonic() - started


@pytest.mark.slow
def test_a_rendezvous_that_never_completes_names_its_endpoint(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    environment = _environment(str(tmp_path / "run"), NUM_GPUS="1", NNODES="2", RDZV_ENDPOINT=endpoint,
                               RDZV_ID="alone", RDZV_TIMEOUT=str(RDZV_TIMEOUT))
    code, last_line, elapsed = _launch_failure(_train_command(), environment)
    assert code == 2
    assert last_line == (f"error: the c10d rendezvous at {endpoint} (RDZV_ID alone) did not complete within "
                         f"{RDZV_TIMEOUT} s: fewer than NNODES 2 nodes joined (start the same launch on every node, "
                         "with the same endpoint and id, or wait longer: RDZV_TIMEOUT)")
    assert elapsed < RDZV_TIMEOUT + 60  # start-up on a loaded machine (torchrun's default timeout: 600 s)


@pytest.mark.slow
def test_an_unreachable_master_addr_is_named(tmp_path):
    port = free_port()
    environment = _environment(str(tmp_path / "run"), NUM_GPUS="1", NNODES="2", NODE_RANK="1",
                               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RDZV_TIMEOUT=str(RDZV_TIMEOUT))
    code, last_line, elapsed = _launch_failure(_train_command(), environment)
    assert code == 2
    assert last_line.startswith(f"error: the static rendezvous of node 1 of 2 at MASTER_ADDR:MASTER_PORT "
                                f"127.0.0.1:{port} did not complete within {RDZV_TIMEOUT} s: ")
    assert elapsed < 3 * RDZV_TIMEOUT + 60  # torch's store client tries twice, with a pause


@pytest.mark.slow
def test_a_tool_launched_without_torchrun_names_an_unreachable_master(tiny_synthvg, tmp_path):
    port = free_port()
    environment = {**_environment(str(tmp_path / "run")), "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    code, last_line, _ = _launch_failure(
        [sys.executable, "tools/relation_train_net.py", "--config-file", SYNTHETIC_HCA_CONFIG,
         *_tool_args(tiny_synthvg, "DIST_TIMEOUT", "2", "OUTPUT_DIR", str(tmp_path / "run"))], environment)
    assert code == 2
    assert last_line.startswith(f"error: setting up the run: rank 1 of 2: the process group at MASTER_ADDR:MASTER_PORT "
                                f"127.0.0.1:{port} did not form within DIST_TIMEOUT 2 s: ")


@pytest.fixture
def argument_printer(tmp_path) -> str:
    """A stand-in for torchrun (TORCHRUN) that prints its arguments, one a line."""
    printer = tmp_path / "print_arguments"
    printer.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    printer.chmod(0o755)
    return str(printer)


def _launch_arguments(printer: str, script: str, *arguments: str, **variables: str) -> list[str]:
    environment = _environment("out", TORCHRUN=printer, **variables)
    result = subprocess.run(["bash", script, *arguments], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=120, check=True)
    return result.stdout.splitlines()


def test_every_script_builds_the_same_torchrun_arguments(argument_printer):
    c10d = dict(NUM_GPUS="4", NNODES="2", RDZV_ENDPOINT="node1:29400", RDZV_ID="42", MAX_RESTARTS="3")
    expected = ["--nproc_per_node=4", "--nnodes=2", "--max_restarts=3", "--rdzv_backend=c10d",
                "--rdzv_endpoint=node1:29400", "--rdzv_id=42", "--rdzv_conf=join_timeout=600"]
    for script, arguments, tool in (("scripts/train.sh", ("predcls", "1"), "tools/relation_train_net.py"),
                                    ("scripts/test.sh", ("sgdet", "2"), "tools/relation_test_net.py"),
                                    ("scripts/pretrain_detector.sh", (), "tools/detector_pretrain_net.py")):
        printed = _launch_arguments(argument_printer, script, *arguments, **c10d)
        assert printed[:len(expected) + 1] == [*expected, tool], script
        assert ["OUTPUT_DIR", "out"] in [printed[index:index + 2] for index in range(len(printed))], script
    static = _launch_arguments(argument_printer, "scripts/train.sh", "predcls", "1", NUM_GPUS="2", NNODES="2",
                               NODE_RANK="1", MASTER_ADDR="10.0.0.1", RDZV_TIMEOUT="60")
    assert static[:7] == ["--nproc_per_node=2", "--nnodes=2", "--max_restarts=0", "--node_rank=1",
                          "--master_addr=10.0.0.1", "--master_port=29500", "--rdzv_conf=timeout=60"]
    one_machine = _launch_arguments(argument_printer, "scripts/train.sh", "predcls", "1", NUM_GPUS="2")
    assert one_machine[:4] == ["--nproc_per_node=2", "--nnodes=1", "--max_restarts=0",
                               "tools/relation_train_net.py"]  # torchrun picks a free local port


def test_the_old_ngpus_name_still_works_with_a_deprecation_note(argument_printer):
    environment = _environment("out", TORCHRUN=argument_printer, NGPUS="3")
    result = subprocess.run(["bash", "scripts/pretrain_detector.sh"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.splitlines()[0] == "--nproc_per_node=3"
    assert "NGPUS is deprecated: use NUM_GPUS" in result.stderr


def test_several_machines_need_an_endpoint_or_master_addr(argument_printer):
    environment = _environment("out", TORCHRUN=argument_printer, NUM_GPUS="1", NNODES="2")
    result = subprocess.run(["bash", "scripts/train.sh", "predcls", "1"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "NNODES 2 needs RDZV_ENDPOINT" in result.stderr and not result.stdout


def test_the_slurm_file_runs_one_launch_per_node_at_the_first_node(argument_printer, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/usr/bin/env bash\nprintf "gpu-a17\\ngpu-a18\\n"\n')
    (bin_dir / "srun").write_text('#!/usr/bin/env bash\necho "srun $1 $2"\nshift 2\n"$@"\n')
    for stand_in in bin_dir.iterdir():
        stand_in.chmod(0o755)
    environment = _environment("out", TORCHRUN=argument_printer, PATH=f"{bin_dir}:{os.environ['PATH']}",
                               SLURM_SUBMIT_DIR=ROOT, SLURM_JOB_NODELIST="gpu-a[17-18]", SLURM_JOB_NUM_NODES="2",
                               SLURM_GPUS_ON_NODE="4", SLURM_JOB_ID="777")
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "slurm", "train.sbatch"), "predcls", "1"], cwd=str(tmp_path),
                            env=environment, capture_output=True, text=True, timeout=120, check=True)
    printed = result.stdout.splitlines()
    assert printed[0] == "srun --ntasks=2 --ntasks-per-node=1"
    assert printed[1:9] == ["--nproc_per_node=4", "--nnodes=2", "--max_restarts=3", "--rdzv_backend=c10d",
                            "--rdzv_endpoint=gpu-a17:29500", "--rdzv_id=777", "--rdzv_conf=join_timeout=600",
                            "tools/relation_train_net.py"]


def test_failure_reports_name_the_first_rank_that_failed():
    store = torch.distributed.HashStore()
    first = FailureReports(store, rank=1, world_size=2, wait_seconds=0.2).post(ValueError("boom"))
    assert first.startswith(f"rank 1 of 2 ({HOST}) stopped: ValueError: boom. Failure reports, first received "
                            "first: this rank. No report from rank 0 within 0.2 s")
    second = FailureReports(store, rank=0, world_size=2, wait_seconds=0.2).post(RuntimeError("peer closed\nthe link"))
    assert second == (f"rank 0 of 2 ({HOST}) stopped: RuntimeError: peer closed the link. Failure reports, first "
                      f"received first: rank 1 ({HOST}): ValueError: boom; this rank")


def test_dist_timeout_must_be_positive(tiny_synthvg, tmp_path):
    from tool_loading import load_tool
    from rebalance_hca.utils.cli import UserInputError

    with pytest.raises(UserInputError, match="DIST_TIMEOUT must be a positive number of seconds, got 0"):
        load_tool("relation_train_net").main(["--config-file", SYNTHETIC_HCA_CONFIG,
                                              *_tool_args(tiny_synthvg, "DIST_TIMEOUT", "0",
                                                          "OUTPUT_DIR", str(tmp_path / "run"))])
