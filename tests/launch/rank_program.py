"""A small MPI program for runner tests; behaviour chosen by argv[1].

- ``exit CODE RANK``: every rank joins a barrier, then RANK exits with CODE, the others with 0.
- ``wait DIR``: write DIR/ready<r>, on SIGTERM write DIR/term<r> and exit 0; otherwise sleep.
- ``die RANK DIR PREFIX``: create /dev/shm/<PREFIX><r>_region, start a detached child that sleeps
  (like a python-backend stub), write DIR/ready<r>; RANK kills itself with SIGKILL after 1 s.
- ``allreduce DIR``: allreduce rank+1 over COMM_WORLD; write DIR/result<r> with the sum and tl0 address.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
mode = sys.argv[1]

if mode == "exit":
    comm.Barrier()
    sys.exit(int(sys.argv[2]) if rank == int(sys.argv[3]) else 0)
elif mode == "wait":
    out = Path(sys.argv[2])

    def _term(signum: int, frame: object) -> None:
        (out / f"term{rank}").write_text("SIGTERM")
        sys.exit(0)

    signal.signal(signal.SIGTERM, _term)
    (out / f"ready{rank}").write_text(str(os.getpid()))
    while True:
        time.sleep(0.1)
elif mode == "die":
    victim, out, prefix = int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    Path(f"/dev/shm/{prefix}{rank}_region").write_bytes(b"\0" * 4096)
    stub = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (out / f"ready{rank}").write_text(f"{os.getpid()} {stub.pid}")
    time.sleep(1.0)
    if rank == victim:
        os.kill(os.getpid(), signal.SIGKILL)
    while True:
        time.sleep(0.1)
elif mode == "allreduce":
    out = Path(sys.argv[2])
    total = comm.allreduce(rank + 1)
    addr = subprocess.run(["ip", "-4", "-o", "addr", "show", "tl0"], capture_output=True, text=True).stdout
    fields = addr.split()
    (out / f"result{rank}").write_text(f"{total} {fields[3].split('/')[0] if len(fields) > 3 else 'none'}")
    MPI.Finalize()
