"""One run per OUTPUT_DIR: the lock file, its refusal naming the holder, the takeover of a stale lock (also by a
torchrun group restarted after its rank 0 died), and the temporary files of a killed save removed on taking
the folder."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from relation_testing import ROOT, SYNTHETIC_HCA_CONFIG, TINY_RELATION_OPTS, mode_opts
from rebalance_hca.config import load_config
from rebalance_hca.engine import launch
from rebalance_hca.utils.cli import UserInputError
from rebalance_hca.utils.run_lock import LOCK_FILE_NAME, OutputDirInUse, RunLock

PYTHON = sys.executable
HOLD_LOCK = """
import sys, time
from rebalance_hca.utils.run_lock import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder_process(tmp_path):
    """A live process of this host that holds the lock of tmp_path/out; killed (and reaped) afterwards."""
    folder = tmp_path / "out"
    folder.mkdir()
    process = subprocess.Popen([PYTHON, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": ROOT})
    assert process.stdout.readline().strip() == "held"
    yield folder, process
    process.kill()
    process.wait()


def test_a_second_run_is_refused_naming_the_holder_and_a_dead_one_is_taken_over(holder_process):
    folder, process = holder_process
    with pytest.raises(OutputDirInUse) as error:
        RunLock(str(folder)).acquire()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"OUTPUT_DIR {folder} is in use by another run: pid {process.pid} on "
                              f"{socket.gethostname()} since 20")
    process.send_signal(signal.SIGKILL)
    process.wait()
    lock = RunLock(str(folder))
    lock.acquire()
    assert lock.taken_over is not None and lock.taken_over.pid == process.pid
    with open(folder / LOCK_FILE_NAME, encoding="utf-8") as stream:
        assert json.load(stream)["pid"] == os.getpid()
    lock.release()
    assert not (folder / LOCK_FILE_NAME).exists()


def test_a_lock_from_another_host_is_refused_with_the_file_to_remove(tmp_path):
    (tmp_path / LOCK_FILE_NAME).write_text(json.dumps({"pid": os.getpid(), "host": "elsewhere", "since": "then",
                                                       "command": "relation_train_net.py"}))
    with pytest.raises(OutputDirInUse, match=rf"pid {os.getpid()} on elsewhere since then \(relation_train_net.py\).*"
                                             rf"once that run is over, remove {tmp_path / LOCK_FILE_NAME}"):
        RunLock(str(tmp_path)).acquire()


def test_a_lock_of_an_earlier_process_with_a_reused_pid_is_stale(tmp_path):
    """Same pid, but another process start (a reboot, a new container): not the holder any more."""
    lock = RunLock(str(tmp_path))
    lock.acquire()
    with open(lock.path, encoding="utf-8") as stream:
        recorded = json.load(stream)
    lock.release()
    parent = os.getppid()
    (tmp_path / LOCK_FILE_NAME).write_text(json.dumps({**recorded, "pid": parent, "start_tick": 1}))
    successor = RunLock(str(tmp_path))
    successor.acquire()
    assert successor.taken_over.pid == parent
    successor.release()


def _session_config(output_dir: str):
    return load_config(None, ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", output_dir])


def test_the_session_holds_the_folder_removes_orphans_and_releases_on_error(tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    orphans = [output / ".model_0000002.pth.0123456789abcdef.tmp", output / ".last_checkpoint.fedcba9876543210.tmp"]
    kept = [output / ".notes.tmp", output / "model_0000002.pth", output / "inference"]
    for path in orphans + kept[:2]:
        path.write_bytes(b"partial")
    kept[2].mkdir()
    (kept[2] / ".predictions.npz.0123456789abcdef.tmp").write_bytes(b"another folder")
    with pytest.raises(RuntimeError, match="boom"):
        with launch.session(_session_config(str(output))):
            assert (output / LOCK_FILE_NAME).exists()
            with pytest.raises(UserInputError, match="is in use by another run"):
                launch.claim_output_dir(str(output))
            raise RuntimeError("boom")
    assert not (output / LOCK_FILE_NAME).exists()
    assert not any(path.exists() for path in orphans) and all(path.exists() for path in kept)
    log = (output / "log.txt").read_text()
    assert "Removed 2 temporary file(s) left in OUTPUT_DIR by a killed save" in log


def test_only_rank_0_of_a_launch_takes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert launch.claim_output_dir(str(tmp_path)) is None
    assert not (tmp_path / LOCK_FILE_NAME).exists()


@pytest.mark.slow
def test_a_second_tool_into_a_running_training_folder_is_refused(tiny_synthvg, tmp_path, capsys):
    output = str(tmp_path / "run")
    command = [PYTHON, "tools/relation_train_net.py", "--config-file", SYNTHETIC_HCA_CONFIG, *TINY_RELATION_OPTS,
               *mode_opts("predcls"), "DATASETS.DATA_DIR", tiny_synthvg, "GLOVE_DIR", os.path.join(tiny_synthvg, "vg"),
               "OUTPUT_DIR", output, "SOLVER.MAX_ITER", "100000", "SOLVER.TO_VAL", "False",
               "SOLVER.CHECKPOINT_PERIOD", "100000", "--skip-test"]
    training = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 300
        while not os.path.exists(os.path.join(output, "log.txt")) and training.poll() is None:
            assert time.time() < deadline
            time.sleep(0.1)
        second = subprocess.run([PYTHON, "tools/relation_test_net.py", *command[2:]], cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
    finally:
        training.kill()
        training.wait()
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.stderr.strip().startswith(f"error: OUTPUT_DIR {output} is in use by another run: pid "
                                            f"{training.pid} on {socket.gethostname()} since ")
    assert "(relation_train_net.py)" in second.stderr


RESTARTED_GROUP = """
import os, sys
from rebalance_hca.engine import launch
claim = launch.claim_output_dir(sys.argv[1])
if os.environ["RANK"] == "0" and os.environ["TORCHELASTIC_RESTART_COUNT"] == "0":
    os._exit(3)  # rank 0 dies holding the lock; the agent restarts the group
line = (f"rank {os.environ['RANK']} restart {os.environ['TORCHELASTIC_RESTART_COUNT']} holds {claim is not None} "
        f"took over {claim is not None and claim.lock.taken_over is not None}\\n")
os.write(1, line.encode())  # one write: the two ranks share the pipe and print() writes piece by piece
if claim is not None:
    claim.lock.release()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_torchrun_group_restarted_after_rank_0_died_retakes_its_lock(tmp_path):
    script = tmp_path / "group.py"
    script.write_text(RESTARTED_GROUP)
    output = tmp_path / "out"
    torchrun = os.path.join(os.path.dirname(PYTHON), "torchrun")
    result = subprocess.run([torchrun, "--nproc_per_node", "2", "--max-restarts", "1", "--master_addr", "127.0.0.1",
                             "--master_port", str(_free_port()), str(script), str(output)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = sorted(line for line in result.stdout.splitlines() if line.startswith("rank") and "restart 1" in line)
    assert lines == ["rank 0 restart 1 holds True took over True", "rank 1 restart 1 holds False took over False"]
    assert not (output / LOCK_FILE_NAME).exists()
