"""MPI: which rank am I, which device is mine, and a dynamic schedule with one writer rank.

Rank 0 owns the output file, computes points itself and hands chunks of point indices to the
other ranks, which send back finished values. Each worker keeps two requests outstanding, so it
never waits for rank 0 to finish a point before getting more work; chunks are small, so uneven
ranks finish together. Only rank 0 touches the output (and holds its lock); there is no
reduction of whole arrays.
"""
from __future__ import annotations

import os
from collections import deque
from typing import Any, Callable, Mapping, Sequence

_MPI_ENV = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS", "SLURM_PROCID_MPI")
_TAG_REQUEST, _TAG_RESULT, _TAG_WORK = 1, 2, 3
_PREFETCH = 2


def launched_by_mpi() -> bool:
    """True under mpirun/mpiexec/srun-with-PMI; plain runs never import mpi4py."""
    return any(k in os.environ for k in _MPI_ENV)


def launch_rank() -> int:
    """This process's rank as the launcher set it (0 outside MPI), readable before MPI starts."""
    for key in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if key in os.environ:
            try:
                return int(os.environ[key])
            except ValueError:
                pass
    return 0


def get_comm() -> Any | None:
    """COMM_WORLD when running under MPI with more than one rank, else None."""
    if not launched_by_mpi():
        return None
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def rank_of(comm: Any | None) -> int:
    return 0 if comm is None else comm.Get_rank()


def local_rank(comm: Any | None) -> int:
    """Rank among the processes on this node (for choosing a GPU)."""
    for key in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "PMI_LOCAL_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    if comm is None:
        return 0
    from mpi4py import MPI

    return comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()


def rank_device(comm: Any | None, requested: str | None = None) -> str:
    """``cuda:(local_rank % n_gpus)`` when CUDA is present, else CPU (or what the user asked)."""
    import torch

    if requested and requested != "cuda":
        return requested
    if torch.cuda.is_available():
        return f"cuda:{local_rank(comm) % torch.cuda.device_count()}"
    if requested == "cuda":
        from .errors import LandscapeError

        raise LandscapeError("--device cuda was asked for but torch sees no CUDA device")
    return "cpu"


def on_root(comm: Any | None, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only and return its result on every rank; a `LandscapeError` it raises
    is raised on every rank (on ranks other than 0 as an `EchoedError`: rank 0 prints it).

    A check or file write that one process does must not leave the other ranks waiting forever
    for a broadcast that never comes when it fails: they all stop with the same one-line error.
    """
    from .errors import EchoedError, LandscapeError

    error = result = None
    if rank_of(comm) == 0:
        try:
            result = fn()
        except LandscapeError as e:
            error = str(e)
    if comm is not None:
        error, result = comm.bcast((error, result), root=0)
    if error:
        raise LandscapeError(error) if rank_of(comm) == 0 else EchoedError(error)
    return result


def on_every_rank(comm: Any | None, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on every rank (checks each rank makes of its own input); if any rank fails, every
    rank raises: rank 0 its own error, or the first failing rank's, named; the others an `EchoedError`,
    which the CLI does not print, so one refusal is one line, not one per rank.

    Every rank must reach this call (it gathers), as every rank runs the same checks in the same order.
    """
    from .errors import EchoedError, LandscapeError

    if comm is None:
        return fn()
    error = result = None
    try:
        result = fn()
    except LandscapeError as e:
        error = str(e)
    errors = comm.allgather(error)
    failed = [(r, e) for r, e in enumerate(errors) if e]
    if not failed:
        return result
    if rank_of(comm) != 0:
        raise EchoedError(failed[0][1])
    rank, message = failed[0]
    raise LandscapeError(message if rank == 0 else f"(rank {rank}) {message}")


def configure_threads(comm: Any | None, threads: int | None = None) -> int:
    """One torch thread per rank under MPI (ranks share the cores), torch's default otherwise."""
    import torch

    if threads is None:
        env = os.environ.get("LANDSCAPE_THREADS")
        threads = int(env) if env else (1 if comm is not None else None)
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def chunk_size(n_points: int, n_ranks: int) -> int:
    """Small enough that ranks finish together, large enough that messages are rare."""
    return max(1, min(8, n_points // (4 * max(n_ranks, 1)) or 1))


def run_points(point_fn: Callable[[int], Mapping[str, float]], todo: Sequence[int],
               record: Callable[[int, Mapping[str, float]], None], comm: Any | None = None,
               on_point: Callable[[], None] | None = None) -> None:
    """Evaluate ``point_fn`` at every index of ``todo``; ``record`` runs on rank 0 only.

    Every rank must call this with the same ``todo`` (rank 0's list is the one used).
    """
    if comm is None or comm.Get_size() == 1:
        for p in todo:
            record(p, point_fn(p))
            if on_point:
                on_point()
        return
    if comm.Get_rank() == 0:
        _coordinate(point_fn, list(todo), record, comm, on_point)
    else:
        _work(point_fn, comm)


def _coordinate(point_fn, todo, record, comm, on_point) -> None:
    from mpi4py import MPI

    size = comm.Get_size()
    n = chunk_size(len(todo), size)
    queue = deque(todo[i:i + n] for i in range(0, len(todo), n))
    out_chunks = [0] * size   # chunks sent to each worker and not yet returned
    requests = [0] * size     # requests (initial + one per result) received from each worker
    results = [0] * size
    own: deque = deque()
    status = MPI.Status()

    def serve(block: bool) -> None:
        while block or comm.Iprobe(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status):
            block = False
            msg = comm.recv(source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
            src = status.Get_source()
            requests[src] += 1
            if status.Get_tag() == _TAG_RESULT:
                results[src] += 1
                out_chunks[src] -= 1
                for p, values in msg:
                    record(p, values)
                    if on_point:
                        on_point()
            if queue:
                comm.send(queue.popleft(), dest=src, tag=_TAG_WORK)
                out_chunks[src] += 1
            else:
                comm.send(None, dest=src, tag=_TAG_WORK)

    def finished() -> bool:
        return not queue and not own and all(
            out_chunks[w] == 0 and requests[w] == _PREFETCH + results[w] for w in range(1, size))

    while not finished():
        serve(block=False)
        if own:
            p = own.popleft()
            record(p, point_fn(p))
            if on_point:
                on_point()
        elif queue:
            own.extend(queue.popleft())
        elif not finished():
            serve(block=True)


def _work(point_fn, comm) -> None:
    outstanding = _PREFETCH
    for _ in range(_PREFETCH):
        comm.send(None, dest=0, tag=_TAG_REQUEST)
    while outstanding:
        chunk = comm.recv(source=0, tag=_TAG_WORK)
        outstanding -= 1
        if chunk is None:
            continue
        comm.send([(p, point_fn(p)) for p in chunk], dest=0, tag=_TAG_RESULT)
        outstanding += 1
