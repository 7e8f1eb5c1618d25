"""The Llama forward pass of one tensor-parallel rank, with a preallocated KV cache.

One call to :meth:`LlamaShard.execute` runs one scheduler step as a single packed forward:
the rows are one new token per running slot (decode) followed by every token of each newly
admitted prompt (prefill). Linear layers run once over all rows; attention runs batched for
the decode rows (padded to the longest cached length, masked) and causally per prompt.
Column-parallel ``qkv``/``fc``/``gate`` and row-parallel ``dense``/``proj`` + all-reduce
follow TensorRT-LLM's layout; ``lm_head`` is vocab-parallel and gathered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from triton_llm.errors import IncompatibleError
from triton_llm.runtime.checkpoint import ModelConfig
from triton_llm.runtime.parallel import TensorParallelComm


@dataclass
class StepPlan:
    """The work of one step, identical on every rank (rank 0 broadcasts it).

    ``moves`` (src, dst) copy KV slots first (compaction after requests leave); then the
    first ``len(decode_tokens)`` slots each get one token, and each ``(slot, ids)`` prefill
    writes a prompt into a free slot. With ``report``, every rank then all-gathers the number
    of slots it computed in this step (a plan without rows tells the ranks that every slot
    is free).
    """

    moves: list[tuple[int, int]] = field(default_factory=list)
    decode_tokens: list[int] = field(default_factory=list)
    prefills: list[tuple[int, list[int]]] = field(default_factory=list)
    shutdown: bool = False
    report: bool = False

    @property
    def slots(self) -> int:
        """The KV slots this step computes."""
        return len(self.decode_tokens) + len(self.prefills)


def rope_inv_freq(config: ModelConfig) -> torch.Tensor:
    """Rotary inverse frequencies, with linear or llama3 scaling when configured.

    Raises:
        IncompatibleError: an unsupported ``rotary_scaling`` type.
    """
    d = config.head_size
    inv = 1.0 / (config.rotary_base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    scaling = config.rotary_scaling or {}
    kind = scaling.get("type") or scaling.get("rope_type")
    if kind in (None, "default"):
        return inv
    factor = float(scaling.get("factor", 1.0))
    if kind == "linear":
        return inv / factor
    if kind == "llama3":
        low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old_ctx = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old_ctx / low, inv / factor, inv)
        smooth = (old_ctx / wavelen - low) / (high - low)
        mixed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_ctx / high) & (wavelen <= old_ctx / low)
        return torch.where(medium, mixed, scaled)
    raise IncompatibleError(
        f"rotary_scaling type {kind!r} is not supported by the CPU runtime (none, linear, llama3)",
        field="rotary_scaling",
        value=kind,
    )


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class LlamaShard:
    """One rank's weights, KV cache and forward pass."""

    def __init__(
        self,
        config: ModelConfig,
        weights: dict[str, Any],
        *,
        comm: TensorParallelComm,
        max_batch_size: int,
        max_seq_len: int,
    ) -> None:
        self.config, self.comm = config, comm
        self.hq, self.hk, self.d = config.heads_per_rank, config.kv_heads_per_rank, config.head_size
        self.eps = config.norm_epsilon
        self.embed = weights.pop("transformer.vocab_embedding.weight")
        self.ln_f = weights.pop("transformer.ln_f.weight")
        self.lm_head = weights.pop("lm_head.weight")
        self.layers: list[tuple[torch.Tensor, ...]] = []
        for i in range(config.num_layers):
            p = f"transformer.layers.{i}."
            fc, gate = weights.pop(p + "mlp.fc.weight"), weights.pop(p + "mlp.gate.weight")
            self.layers.append(
                (
                    weights.pop(p + "input_layernorm.weight"),
                    weights.pop(p + "attention.qkv.weight"),
                    weights.pop(p + "attention.dense.weight"),
                    weights.pop(p + "post_layernorm.weight"),
                    torch.cat([fc, gate]).contiguous(),  # one GEMM for SiLU input and multiplier
                    weights.pop(p + "mlp.proj.weight"),
                )
            )
        positions = torch.arange(max_seq_len, dtype=torch.float32)
        freqs = torch.outer(positions, rope_inv_freq(config))
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        shape = (config.num_layers, max_batch_size, self.hk, max_seq_len, self.d)
        self.k_cache = torch.zeros(shape, dtype=torch.float32)
        self.v_cache = torch.zeros(shape, dtype=torch.float32)
        self.lengths = [0] * max_batch_size

    def _move(self, src: int, dst: int) -> None:
        n = self.lengths[src]
        self.k_cache[:, dst, :, :n] = self.k_cache[:, src, :, :n]
        self.v_cache[:, dst, :, :n] = self.v_cache[:, src, :, :n]
        self.lengths[dst] = n

    @torch.inference_mode()
    def execute(self, plan: StepPlan) -> torch.Tensor:
        """Run one step; returns float32 logits ``[n_decode + n_prefill, vocab_size]``.

        Row order: one row per decode slot, then the last prompt position of each prefill.
        """
        for src, dst in plan.moves:
            self._move(src, dst)
        n = len(plan.decode_tokens)
        dec_pos = self.lengths[:n]
        seg_lens = [len(ids) for _, ids in plan.prefills]
        tokens = list(plan.decode_tokens)
        positions = list(dec_pos)
        for _, ids in plan.prefills:
            tokens.extend(ids)
            positions.extend(range(len(ids)))
        tok = torch.tensor(tokens, dtype=torch.long)
        pos = torch.tensor(positions, dtype=torch.long)
        cos, sin = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)
        rows = torch.arange(n)
        dec_pos_t = pos[:n]
        span = max(dec_pos) + 1 if n else 0
        bias = None  # additive -inf beyond each slot's length (only when lengths differ)
        if n > 1 and min(dec_pos) != max(dec_pos):
            bias = torch.zeros(n, 1, 1, span).masked_fill_(
                (torch.arange(span)[None, :] > dec_pos_t[:, None]).view(n, 1, 1, span), float("-inf")
            )
        scale = 1.0 / math.sqrt(self.d)
        hq, hk, d = self.hq, self.hk, self.d
        threads = torch.get_num_threads()
        # decode attention is a few tiny batched matmuls: an OpenMP parallel region costs more than
        # it saves there (and stalls badly on a busy machine), so it runs on one thread.
        tiny_attention = threads > 1 and n * hq * span * d < (1 << 22)
        x = F.embedding(tok, self.embed)
        total = x.shape[0]
        for layer, (ln1, w_qkv, w_o, ln2, w_fg, w_p) in enumerate(self.layers):
            h = _rms_norm(x, ln1, self.eps)
            q, k, v = F.linear(h, w_qkv).split([hq * d, hk * d, hk * d], dim=-1)
            q = _rope(q.view(total, hq, d), cos, sin)
            k = _rope(k.view(total, hk, d), cos, sin)
            v = v.view(total, hk, d)
            kc, vc = self.k_cache[layer], self.v_cache[layer]
            outs = []
            if n:
                kc[rows, :, dec_pos_t] = k[:n]
                vc[rows, :, dec_pos_t] = v[:n]
                # grouped-query decode: the query heads sharing a KV head act as its query rows
                qd = q[:n].view(n, hk, hq // hk, d)
                if tiny_attention:
                    torch.set_num_threads(1)
                scores = torch.matmul(qd, kc[:n, :, :span].transpose(-1, -2)).mul_(scale)
                if bias is not None:
                    scores += bias
                o = torch.matmul(torch.softmax(scores, dim=-1), vc[:n, :, :span])
                if tiny_attention:
                    torch.set_num_threads(threads)
                outs.append(o.reshape(n, hq * d))
            start = n
            for (slot, _), t in zip(plan.prefills, seg_lens, strict=True):
                ks, vs = k[start : start + t].transpose(0, 1), v[start : start + t].transpose(0, 1)
                kc[slot, :, :t] = ks
                vc[slot, :, :t] = vs
                qs = q[start : start + t].transpose(0, 1).unsqueeze(0)
                o = F.scaled_dot_product_attention(
                    qs, ks.unsqueeze(0), vs.unsqueeze(0), is_causal=True, enable_gqa=hq != hk
                )
                outs.append(o[0].transpose(0, 1).reshape(t, hq * d))
                start += t
            attn = F.linear(outs[0] if len(outs) == 1 else torch.cat(outs), w_o)
            self.comm.allreduce_(attn)
            x = x + attn
            h = _rms_norm(x, ln2, self.eps)
            f, g = F.linear(h, w_fg).chunk(2, dim=-1)
            mlp = F.linear(F.silu(f) * g, w_p)
            self.comm.allreduce_(mlp)
            x = x + mlp
        for i in range(n):
            self.lengths[i] += 1
        last = list(range(n))
        start = n
        for (slot, _), t in zip(plan.prefills, seg_lens, strict=True):
            self.lengths[slot] = t
            start += t
            last.append(start - 1)
        h = _rms_norm(x[last], self.ln_f, self.eps)
        logits = self.comm.allgather(F.linear(h, self.lm_head).contiguous())
        return logits[:, : self.config.vocab_size]
