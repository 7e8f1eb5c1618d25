"""The in-flight batching generator of the CPU runtime.

``step()`` retires cancelled and finished requests (compacting KV slots), admits queued
requests into free slots, and runs ONE packed forward pass: a decode token for every running
request plus the whole prompt of every admitted one. Each active request therefore gets
exactly one token per step, and requests added between steps join the batch at the next one.

Finishing follows TensorRT-LLM: a sampled ``end_id`` ends the request and is not returned;
a stop word ends it and is returned (the TensorRT-LLM executor keeps stop tokens in the
output); ``max_new_tokens`` ends it with ``length``.

With tensor parallelism, rank 0's ``step()`` broadcasts the step's :class:`StepPlan`, every
rank runs the same forward (all-reduces inside), and rank 0 samples from the gathered
logits; ranks > 0 call :func:`run_worker`. Whenever the number of occupied slots changes
(a request joins, finishes or is cancelled), every rank reports the slots it computed, so
:meth:`Generator.stats` shows a freed slot on every rank, not only on rank 0.
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import torch

from triton_llm.errors import IncompatibleError, UsageError
from triton_llm.runtime._types import (
    GenerationRequest,
    GeneratorLimits,
    InvalidRequestError,
    RuntimeStats,
    TokenEvent,
    sampling_problems,
)
from triton_llm.runtime.checkpoint import load_rank_weights, read_checkpoint_config
from triton_llm.runtime.model import LlamaShard, StepPlan
from triton_llm.runtime.parallel import LocalComm, TensorParallelComm
from triton_llm.runtime.sampling import banned_tokens, ends_with_stop_word, sample


@dataclass
class _Active:
    request: GenerationRequest
    history: list[int]
    generator: torch.Generator | None
    output: list[int] = field(default_factory=list)
    done: bool = False


class Generator:
    """Loads one rank of a checkpoint and generates for a dynamic batch of requests.

    Not thread-safe: drive it from one thread (see :class:`GeneratorLoop`).
    """

    def __init__(
        self,
        checkpoint_dir: Path,
        *,
        max_batch_size: int,
        max_input_len: int,
        max_seq_len: int,
        threads: int = 0,
        comm: TensorParallelComm | None = None,
    ) -> None:
        """Load the rank's weights and preallocate the KV cache.

        Args:
            checkpoint_dir: a converted checkpoint (config.json + rank{i}.safetensors).
            max_batch_size: concurrent requests (KV slots); more are queued.
            max_input_len: longest prompt accepted.
            max_seq_len: longest prompt + output (KV cache length).
            threads: torch intra-op threads for this process; 0 keeps torch's default.
            comm: tensor-parallel group; None for a single process.

        Raises:
            UsageError: inconsistent limits.
            IncompatibleError: the checkpoint's tp differs from the group size, or unsupported model.
        """
        if max_batch_size < 1 or max_input_len < 1 or max_seq_len <= max_input_len:
            raise UsageError(
                f"bad generator limits: max_batch_size={max_batch_size}, max_input_len={max_input_len}, "
                f"max_seq_len={max_seq_len} (need batch >= 1 and 1 <= max_input_len < max_seq_len)"
            )
        self.comm = comm or LocalComm()
        self.config = read_checkpoint_config(Path(checkpoint_dir))
        if self.config.tp_size != self.comm.size:
            raise IncompatibleError(
                f"{checkpoint_dir} was converted for tp={self.config.tp_size} but {self.comm.size} rank(s) "
                "are running; start exactly tp ranks (mpirun -np <tp>)",
                path=str(checkpoint_dir),
                field="mapping.tp_size",
                value=self.config.tp_size,
            )
        if max_seq_len > self.config.max_position_embeddings:
            raise UsageError(
                f"max_seq_len={max_seq_len} exceeds the model's max_position_embeddings="
                f"{self.config.max_position_embeddings}; lower build.max_seq_len"
            )
        if threads > 0:  # process-wide torch setting
            torch.set_num_threads(threads)
        self._limits = GeneratorLimits(max_input_len, max_seq_len, max_batch_size, self.config.vocab_size)
        self._model = LlamaShard(
            self.config,
            load_rank_weights(Path(checkpoint_dir), self.comm.rank),
            comm=self.comm,
            max_batch_size=max_batch_size,
            max_seq_len=max_seq_len,
        )
        self._pending: deque[_Active] = deque()
        self._slots: list[_Active | None] = []
        self._cancelled: set[str] = set()
        self._closed = False
        self._context = 0  # requests admitted in the last step
        self._context_tokens = 0  # their prompt tokens
        self._generation = 0  # requests decoded in the last step
        self._iteration = 0  # steps that ran a forward pass
        self._step_end_us = 0
        self._rank_slots: tuple[int, ...] = (0,) * self.comm.size  # slots each rank last computed

    @property
    def limits(self) -> GeneratorLimits:
        """max_input_len, max_seq_len, max_batch_size, vocab_size."""
        return self._limits

    def validate(self, request: GenerationRequest, *, check_duplicates: bool = True) -> None:
        """Check a request against the limits without queueing it.

        Args:
            request: the request.
            check_duplicates: also reject an id already in flight (reads the queue: call it
                from the thread that drives the generator).

        Raises:
            InvalidRequestError: the first problem found, naming the field and value.
        """
        lim, rid = self._limits, request.request_id

        def bad(field_name: str, value: object, rule: str) -> InvalidRequestError:
            return InvalidRequestError(
                f"request {rid!r}: {field_name}={value!r}: {rule}", key=rid, field=field_name, value=value
            )

        def check_ids(field_name: str, ids: list[int]) -> None:
            for t in ids:
                if not isinstance(t, int) or not 0 <= t < lim.vocab_size:
                    raise bad(field_name, t, f"token ids must be integers in [0, {lim.vocab_size})")

        n = len(request.input_ids)
        if n == 0:
            raise bad("input_ids", [], "the prompt is empty")
        if n > lim.max_input_len:
            raise bad("input_ids", f"<{n} tokens>", f"longer than max_input_len={lim.max_input_len}")
        check_ids("input_ids", request.input_ids)
        if request.max_new_tokens <= 0:
            raise bad("max_new_tokens", request.max_new_tokens, "must be at least 1")
        if request.max_new_tokens > lim.max_seq_len - n:
            raise bad(
                "max_new_tokens",
                request.max_new_tokens,
                f"prompt ({n}) + max_new_tokens exceeds max_seq_len={lim.max_seq_len}; "
                f"at most {lim.max_seq_len - n} for this prompt",
            )
        for name in ("end_id", "pad_id"):
            value = getattr(request, name)
            if value is not None:
                check_ids(name, [value])
        for name in ("stop_words", "bad_words"):
            for word in getattr(request, name):
                if not word:
                    raise bad(name, word, "each word must be a non-empty list of token ids")
                check_ids(name, word)
        for name, value, rule in sampling_problems(request.sampling):
            raise bad(name, value, rule)
        if check_duplicates and rid in self._ids():
            raise bad("request_id", rid, "a request with this id is already in flight")

    def _ids(self) -> set[str]:
        ids = {a.request.request_id for a in self._pending}
        ids.update(a.request.request_id for a in self._slots if a is not None and not a.done)
        return ids

    def add(self, request: GenerationRequest) -> None:
        """Queue a request; it joins the batch at the next :meth:`step`.

        Raises:
            InvalidRequestError: see :meth:`validate`.
        """
        self.validate(request)
        gen = None
        if not request.sampling.greedy:
            seed = request.sampling.seed if request.sampling.seed is not None else random.getrandbits(63)
            gen = torch.Generator().manual_seed(seed)
        self._pending.append(_Active(request, list(request.input_ids), gen))

    def cancel(self, request_id: str) -> None:
        """Stop a request at the next step (which reports it ``cancelled``); unknown ids are ignored."""
        if request_id in self._ids():
            self._cancelled.add(request_id)

    def has_work(self) -> bool:
        """True while any request is queued or holds a slot (a finished one until the next step frees it)."""
        return bool(self._pending) or bool(self._slots)

    def stats(self) -> RuntimeStats:
        """Queued, running and just-admitted requests, and the slots each rank computed last."""
        running = sum(1 for a in self._slots if a is not None and not a.done)
        return RuntimeStats(
            queued=len(self._pending),
            running=running,
            context=self._context,
            max_batch_size=self._limits.max_batch_size,
            rank_slots=self._rank_slots,
            context_tokens=self._context_tokens,
            generation=self._generation,
            iteration=self._iteration,
            step_end_us=self._step_end_us,
            tokens_per_slot=self._limits.max_seq_len,
        )

    def _retire(self, events: list[TokenEvent]) -> list[tuple[int, int]]:
        """Drop cancelled and finished requests; compact the slots (returns KV moves)."""
        for a in [*self._pending, *(s for s in self._slots if s is not None)]:
            if a.request.request_id in self._cancelled and not a.done:
                a.done = True
                events.append(TokenEvent(a.request.request_id, [], True, "cancelled"))
        self._cancelled.clear()
        self._pending = deque(a for a in self._pending if not a.done)
        live = [a if a is not None and not a.done else None for a in self._slots]
        n = sum(a is not None for a in live)
        moves = []
        holes = [i for i in range(n) if live[i] is None]
        movers = [i for i in range(n, len(live)) if live[i] is not None]
        for dst, src in zip(holes, movers, strict=True):
            live[dst], live[src] = live[src], None
            moves.append((src, dst))
        self._slots = live[:n]
        return moves

    def step(self) -> list[TokenEvent]:
        """Retire, admit, run one forward and sample: one event per active request."""
        events: list[TokenEvent] = []
        moves = self._retire(events)
        running = list(self._slots)
        admitted: list[_Active] = []
        while self._pending and len(self._slots) < self._limits.max_batch_size:
            admitted.append(self._pending.popleft())
            self._slots.append(admitted[-1])
        plan = StepPlan(
            moves=moves,
            decode_tokens=[a.history[-1] for a in running if a is not None],
            prefills=[(len(running) + i, list(a.request.input_ids)) for i, a in enumerate(admitted)],
        )
        plan.report = plan.slots != self._rank_slots[0] or len(set(self._rank_slots)) > 1
        self._context = len(admitted)
        self._context_tokens = sum(len(ids) for _, ids in plan.prefills)
        self._generation = len(plan.decode_tokens)
        if not plan.slots:
            if plan.report:  # the ranks learn that their slots are free
                self._broadcast(plan)
                self._rank_slots = self._report_slots(0)
            return events
        logits = self._execute(plan)
        for row, a in enumerate([*running, *admitted]):
            assert a is not None
            events.append(self._advance(a, logits[row]))
        self._iteration += 1
        self._step_end_us = time.time_ns() // 1000
        return events

    def _broadcast(self, plan: StepPlan) -> None:
        if self._closed and self.comm.size > 1:
            raise UsageError("this generator was closed: its tensor-parallel workers have stopped")
        if self.comm.size > 1:
            self.comm.broadcast(plan)

    def _execute(self, plan: StepPlan) -> torch.Tensor:
        self._broadcast(plan)
        logits = self._model.execute(plan)
        if plan.report:
            self._rank_slots = self._report_slots(plan.slots)
        return logits

    def _report_slots(self, slots: int) -> tuple[int, ...]:
        """Every rank's slot count for this step (all ranks call it in the same order)."""
        if self.comm.size == 1:
            return (slots,)
        counts = self.comm.allgather(torch.tensor([float(slots)], dtype=torch.float32))
        return tuple(int(x) for x in counts.reshape(-1).tolist())

    def _advance(self, a: _Active, row: torch.Tensor) -> TokenEvent:
        req = a.request
        bans = banned_tokens(a.history, req.bad_words) if req.bad_words else []
        if bans:
            row = row.clone()
            row[bans] = float("-inf")
        if a.generator is None:
            token = int(torch.argmax(row).item())
        else:
            token = sample(row, req.sampling, a.generator)
        rid = req.request_id
        if req.end_id is not None and token == req.end_id:
            a.done = True
            return TokenEvent(rid, [], True, "end_id")
        a.history.append(token)
        a.output.append(token)
        if req.stop_words and ends_with_stop_word(a.history, req.stop_words):
            a.done = True
            return TokenEvent(rid, [token], True, "stop_word")
        if len(a.output) >= req.max_new_tokens:
            a.done = True
            return TokenEvent(rid, [token], True, "length")
        return TokenEvent(rid, [token])

    def prompt_logits(self, input_ids: list[int]) -> torch.Tensor:
        """Float32 next-token logits ``[vocab]`` after a prompt (for accuracy checks; idle only).

        Raises:
            UsageError: requests are queued or running.
            InvalidRequestError: bad or too many ids.
        """
        if self.has_work():
            raise UsageError("prompt_logits needs an idle generator (no queued or running requests)")
        self.validate(GenerationRequest("prompt_logits", list(input_ids), 1), check_duplicates=False)
        plan = StepPlan(moves=self._retire([]), prefills=[(0, list(input_ids))])
        return self._execute(plan)[0].clone()

    def abort_all(self, message: str) -> list[TokenEvent]:
        """End every queued and running request with an ``error`` event (after a failed step)."""
        events = [
            TokenEvent(a.request.request_id, [], True, "error", message)
            for a in [*self._pending, *(s for s in self._slots if s is not None and not s.done)]
        ]
        self._pending.clear()
        for a in self._slots:
            if a is not None:
                a.done = True
        self._slots = []
        self._cancelled.clear()
        return events

    def close(self) -> None:
        """On rank 0 of a group, release the workers (they return from :func:`run_worker`)."""
        if not self._closed and self.comm.size > 1 and self.comm.rank == 0:
            self.comm.broadcast(StepPlan(shutdown=True))
        self._closed = True

    def follow(self) -> None:
        """Ranks > 0: execute rank 0's broadcast steps until rank 0 closes its generator.

        Raises:
            UsageError: called on rank 0, which drives the group with :meth:`step`.
        """
        if self.comm.rank == 0:
            raise UsageError("run_worker is for ranks > 0; rank 0 drives the group with Generator.step()")
        while True:
            plan = self.comm.broadcast(None)
            if not isinstance(plan, StepPlan) or plan.shutdown:
                return
            if plan.slots:
                self._model.execute(plan)
            if plan.report:  # the slots this rank computed, as it counts them
                self._rank_slots = self._report_slots(plan.slots)


def run_worker(generator: Generator) -> None:
    """Ranks > 0: follow rank 0 (see :meth:`Generator.follow`) until rank 0 closes its generator.

    Rank 0 drives the group with ``Generator.step()`` (directly or through a ``GeneratorLoop``);
    ``Generator.close()`` / ``GeneratorLoop.close()`` on rank 0 sends the shutdown message that
    makes this return.

    Raises:
        UsageError: called on rank 0.
    """
    generator.follow()


def generate(generator: Generator, requests: list[GenerationRequest]) -> dict[str, list[int]]:
    """Run requests to completion on a single-driver generator; returns output ids per request id."""
    out: dict[str, list[int]] = {r.request_id: [] for r in requests}
    for r in requests:
        generator.add(r)
    while generator.has_work():
        for ev in generator.step():
            out[ev.request_id].extend(ev.new_token_ids)
    return out
