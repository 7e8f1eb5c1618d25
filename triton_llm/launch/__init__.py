"""Launching Triton: one server per rank under mpirun, locally, across hosts or in pods.

Planning is pure (:mod:`~triton_llm.launch.hosts`, :mod:`~triton_llm.launch.transport`,
:mod:`~triton_llm.launch.agents`, :mod:`~triton_llm.launch.plan`); :mod:`~triton_llm.launch.runner`
executes a plan, forwards signals, cleans up and returns the group's exit code.
"""

from triton_llm.launch.agents import Agent, kubectl_exec_argv, make_agent
from triton_llm.launch.hosts import (
    Host,
    local_hosts,
    lws_hosts,
    parse_hostfile,
    place_ranks,
    read_hostfile,
    statefulset_hosts,
)
from triton_llm.launch.plan import (
    LaunchPlan,
    build_mpi_command,
    check_engine_ranks,
    plan_mpi,
    plan_triton_group,
)
from triton_llm.launch.prepare import PreparedRepository, prepare_repository
from triton_llm.launch.runner import run_group, wait_for_hosts
from triton_llm.launch.transport import TransportSettings, check_transport, load_transport

__all__ = [
    "Agent",
    "Host",
    "LaunchPlan",
    "PreparedRepository",
    "TransportSettings",
    "build_mpi_command",
    "check_engine_ranks",
    "check_transport",
    "kubectl_exec_argv",
    "load_transport",
    "local_hosts",
    "lws_hosts",
    "make_agent",
    "parse_hostfile",
    "place_ranks",
    "plan_mpi",
    "plan_triton_group",
    "prepare_repository",
    "read_hostfile",
    "run_group",
    "statefulset_hosts",
    "wait_for_hosts",
]
