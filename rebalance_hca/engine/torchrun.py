"""torchrun that fails in one line: ``python -m rebalance_hca.engine.torchrun [torchrun arguments] SCRIPT ...``
(what scripts/_launch.sh runs; docs/training.md#several-machines).

The arguments and the launch are torchrun's (``torch.distributed.run``). Only the ends differ:

* a rendezvous that does not complete: one ``error:`` line naming the endpoint and the timeout, exit code 2,
  instead of the launcher's traceback. That is a c10d rendezvous whose nodes do not all join within
  ``--rdzv-conf join_timeout=S``, whose endpoint cannot be reached, or which is closed (its RDZV_ID was used
  by a run that ended); and with the static rendezvous, a MASTER_ADDR that cannot be reached or nodes that
  do not all join within ``--rdzv-conf timeout=S``;
* workers that fail: torchrun's failure summary (the first failed rank, its exit code or signal, its error)
  without the launcher's traceback, and the first failed worker's exit code when it is positive (2 for a
  user error), else 1;
* restarts (``--max-restarts``) work on several machines: the workers of each attempt get a store of their
  own (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` unless set). With the c10d rendezvous, torch's agents
  otherwise share one store with the workers of every attempt, and a restarted worker can read the
  addresses the previous attempt's workers published there; its process group then fails to connect
  ("Gloo connectFullMesh failed ... Connection refused"): 6 of 8 restarts of a two-machine gloo script
  (torch 2.14), 0 of 8 with a store per attempt.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from torch.distributed import DistError
from torch.distributed import run as torch_run
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.rendezvous.api import (RendezvousClosedError, RendezvousConnectionError, RendezvousError,
                                                      RendezvousTimeoutError)

from ..utils.cli import UserInputError, run_tool
from ..utils.comm import one_line

# Set to "1", torch's elastic agents give each attempt's workers a store of their own (module docstring).
SHARED_STORE_SWITCH = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"
# torchrun's default, in seconds, for the c10d join_timeout and the static rendezvous's timeout.
TORCHRUN_RENDEZVOUS_TIMEOUT = 600


def rendezvous_settings(args: argparse.Namespace) -> dict[str, str]:
    """The ``--rdzv-conf`` key=value pairs of torchrun's parsed ``args``."""
    pairs = [pair.split("=", 1) for pair in (args.rdzv_conf or "").split(",") if "=" in pair]
    return {key.strip(): value.strip() for key, value in pairs}


def rendezvous_description(args: argparse.Namespace) -> tuple[str, str]:
    """(where the nodes meet, how long they wait) for torchrun's parsed ``args``, e.g. ("the c10d rendezvous
    at node1:29500 (RDZV_ID 42)", "600 s"), read after ``torch.distributed.run.run`` resolved them."""
    settings = rendezvous_settings(args)
    if args.rdzv_backend == "static":
        where = (f"the static rendezvous of node {args.node_rank} of {args.nnodes} at MASTER_ADDR:MASTER_PORT "
                 f"{args.master_addr}:{args.master_port}")
        timeout = settings.get("timeout", TORCHRUN_RENDEZVOUS_TIMEOUT)
    else:
        where = f"the {args.rdzv_backend} rendezvous at {args.rdzv_endpoint} (RDZV_ID {args.rdzv_id})"
        timeout = settings.get("join_timeout", TORCHRUN_RENDEZVOUS_TIMEOUT)
    return where, f"{timeout} s"


def rendezvous_failure(args: argparse.Namespace, error: Exception) -> str:
    """One line saying why the nodes did not meet, naming the endpoint and the timeout."""
    where, timeout = rendezvous_description(args)
    cause = error.__cause__ or error
    if isinstance(error, RendezvousTimeoutError):
        return (f"{where} did not complete within {timeout}: fewer than NNODES {args.nnodes} nodes joined (start "
                "the same launch on every node, with the same endpoint and id, or wait longer: RDZV_TIMEOUT)")
    if isinstance(error, RendezvousClosedError):
        return f"{where} is closed: a run with this id has ended; give this run a new RDZV_ID"
    if isinstance(error, RendezvousConnectionError):
        return f"cannot reach {where}: {one_line(str(cause))}"
    if args.rdzv_backend == "static":
        return f"{where} did not complete within {timeout}: {one_line(str(cause))}"
    return f"{where} failed: {one_line(str(cause))}"


def launch(argv: Sequence[str] | None = None) -> int:
    """Run torchrun with ``argv``; returns the exit code (0, or the first failed worker's) after printing
    torchrun's failure summary. Raises UserInputError (``rendezvous_failure``) when the nodes do not meet."""
    os.environ.setdefault(SHARED_STORE_SWITCH, "1")
    args = torch_run.parse_args(argv)
    try:
        torch_run.run(args)
    except ChildFailedError as error:
        print(error, file=sys.stderr, flush=True)
        _, first_failure = error.get_first_failure()
        return first_failure.exitcode if first_failure.exitcode > 0 else 1
    except (RendezvousError, DistError) as error:
        raise UserInputError(rendezvous_failure(args, error)) from error
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(launch(argv))


if __name__ == "__main__":
    run_tool(main)
