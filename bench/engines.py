"""The engines `tuneloop bench` compares in process, behind one small interface.

Each engine takes token ids (never text), so every engine sees exactly the same input:
- `generate(prompts, new_tokens, stop_at_end=False)`: greedy, end token ignored so every
  engine produces the same number of tokens (or, with `stop_at_end`, each row stops after its
  end token, as a server's answer does); returns the phases' timings;
- `logits(ids)`: teacher-forced logits [T, vocab] of one sequence, for perplexity.

Engines: `tuneloop` (any variant folder `load_causal_lm` reads: the fused slot-cache loop,
the optimum graph or torch), `transformers` (its own `generate`, torch eager) and `llama.cpp`
(llama-cpp-python's bindings to the C API: one `llama_decode` per step over all sequences,
like llama.cpp's batched example, so batch 8 is a real batch there too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Timing:
    prompt_tokens: int
    prefill_s: float
    """Prompt processing until the first new token of every row is known (= time to first
    token: no engine streams a row's first token before its batch's prefill ends)."""
    decode_tokens: int
    """Tokens produced after the first one, all rows together."""
    decode_s: float
    passes: int | None = None
    """Forward passes of the decode phase, when not one per token (speculative decoding)."""
    requests: int = 1
    """Generations these timings add up (time to first token is their mean)."""

    @classmethod
    def total(cls, timings: list[Timing]) -> Timing:
        """Several generations run one after another, as one measurement."""
        passes = [t.passes if t.passes is not None else t.decode_tokens for t in timings]
        drafted = any(t.passes is not None for t in timings)
        return cls(
            sum(t.prompt_tokens for t in timings),
            sum(t.prefill_s for t in timings),
            sum(t.decode_tokens for t in timings),
            sum(t.decode_s for t in timings),
            passes=sum(passes) if drafted else None,
            requests=sum(t.requests for t in timings),
        )

    def to_json(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "ttft_s": self.prefill_s / self.requests,
            "prefill_tok_s": self.prompt_tokens / self.prefill_s if self.prefill_s else 0.0,
            "decode_tok_s": self.decode_tokens / self.decode_s if self.decode_s else 0.0,
            **({"tokens_per_pass": self.decode_tokens / self.passes} if self.passes else {}),
        }


class TuneloopEngine:
    speculate = False
    """One token per pass: the engine itself, comparable with every peer's plain decoding."""

    def __init__(self, folder: Path, threads: int) -> None:
        from tuneloop.optimize.runtime import load_causal_lm

        self.model = load_causal_lm(Path(folder), threads)
        if hasattr(self.model, "speculate"):
            self.model.speculate = self.speculate

    def generate(self, prompts: list[list[int]], new_tokens: int, stop_at_end=False) -> Timing:
        run = self.model.generate(prompts, new_tokens, stop_at_eos=stop_at_end)
        # Passes are worth reporting only when they produced several tokens (speculation).
        passes = run.decode_steps if run.decode_tokens is not None else None
        return Timing(
            run.prompt_tokens, run.prefill_seconds, run.produced, run.decode_seconds, passes
        )

    def logits(self, ids: list[int]) -> np.ndarray:
        return self.model.sequence_logits(ids)

    def answer(self, prompt: list[int], max_tokens: int) -> int:
        """Tokens of one greedy answer that stops at the end token, as a server's would."""
        return len(self.model.generate([prompt], max_tokens, stop_at_eos=True).tokens[0])


class DraftedEngine(TuneloopEngine):
    """The same variant with its draft table (`tuneloop optimize draft`): a single prompt
    decodes speculatively, as `tuneloop serve` does for a sequence running alone."""

    speculate = True


class TransformersEngine:
    def __init__(self, folder: Path, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
        self.model.eval()

    def generate(self, prompts: list[list[int]], new_tokens: int, stop_at_end=False) -> Timing:
        torch = self.torch
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        clock = _FirstTokenClock()
        with torch.inference_mode():
            started = time.perf_counter()
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=1 if stop_at_end else new_tokens,
                do_sample=False,
                pad_token_id=0,
                streamer=clock,
            )
            ended = time.perf_counter()
        first = clock.first_token_at - started
        produced = (new_tokens - 1) * len(prompts)
        if stop_at_end:  # rows that ended early are padded after their end token
            ends = self.model.generation_config.eos_token_id
            ends = set(ends if isinstance(ends, list) else [ends])
            produced = sum(_until_end(row[width:].tolist(), ends) - 1 for row in out)
        return Timing(sum(len(p) for p in prompts), first, produced, ended - started - first)

    def logits(self, ids: list[int]) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(input_ids=self.torch.tensor([ids])).logits[0].float().numpy()


def _until_end(tokens: list[int], ends: set[int]) -> int:
    """How many of `tokens` a generation that stops at its end token produced."""
    return next((i + 1 for i, token in enumerate(tokens) if token in ends), len(tokens))


class _FirstTokenClock:
    """A generate() streamer that only notes when the first new token arrives."""

    def __init__(self) -> None:
        self.calls, self.first_token_at = 0, 0.0

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:  # the first call carries the prompt
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


class LlamaCppEngine:
    """A GGUF file through llama.cpp's C API (llama-cpp-python's ctypes bindings)."""

    MAX_ROWS = 8
    ROW_CONTEXT = 1024

    def __init__(self, gguf: Path, threads: int) -> None:
        import llama_cpp as api

        self.api = api
        api.llama_backend_init()
        _silence(api)
        model_params = api.llama_model_default_params()
        self.model = api.llama_model_load_from_file(str(gguf).encode(), model_params)
        if not self.model:
            raise RuntimeError(f"llama.cpp cannot load {gguf}")
        params = api.llama_context_default_params()
        params.n_ctx = self.MAX_ROWS * self.ROW_CONTEXT
        params.n_batch = params.n_ubatch = 2048
        params.n_seq_max = self.MAX_ROWS
        params.n_threads = params.n_threads_batch = threads
        self.ctx = api.llama_init_from_model(self.model, params)
        self.tokens = api.llama_model_get_vocab(self.model)
        self.vocab = api.llama_vocab_n_tokens(self.tokens)
        self.batch = api.llama_batch_init(2048, 0, 1)

    def generate(self, prompts: list[list[int]], new_tokens: int, stop_at_end=False) -> Timing:
        self._clear()
        started = time.perf_counter()
        # 1) every prompt in one batch, each its own sequence; logits only at the ends
        cells = [(tok, pos, row) for row, p in enumerate(prompts) for pos, tok in enumerate(p)]
        ends = np.cumsum([len(p) for p in prompts]) - 1
        next_ids = dict(enumerate(self._decode(cells, set(ends.tolist())).tolist()))
        prefill = time.perf_counter() - started
        # 2) one token per running row per step, all of them in one llama_decode
        started, produced = time.perf_counter(), 0
        for step in range(new_tokens - 1):
            if stop_at_end:  # a row whose last token ended its answer leaves the batch
                next_ids = {r: t for r, t in next_ids.items() if not self._ends(t)}
            if not next_ids:
                break
            rows = list(next_ids)
            cells = [(next_ids[r], len(prompts[r]) + step, r) for r in rows]
            chosen = self._decode(cells, set(range(len(cells))))
            next_ids = dict(zip(rows, chosen.tolist(), strict=True))
            produced += len(rows)
        decode = time.perf_counter() - started
        return Timing(sum(len(p) for p in prompts), prefill, produced, decode)

    def logits(self, ids: list[int]) -> np.ndarray:
        self._clear()
        cells = [(tok, pos, 0) for pos, tok in enumerate(ids)]
        self._fill(cells, set(range(len(cells))))
        self._run()
        return np.stack([self._row(i).copy() for i in range(len(ids))])

    def _decode(self, cells, wanted: set[int]) -> np.ndarray:
        """Run one batch; the greedy next token of every cell in `wanted`, in cell order."""
        self._fill(cells, wanted)
        self._run()
        return np.array([int(self._row(i).argmax()) for i in sorted(wanted)])

    def _ends(self, token: int) -> bool:
        """Does `token` end a generation (llama.cpp's end-of-generation tokens)?"""
        return bool(self.api.llama_vocab_is_eog(self.tokens, token))

    def _fill(self, cells, wanted: set[int]) -> None:
        batch = self.batch
        for i, (token, pos, seq) in enumerate(cells):
            batch.token[i], batch.pos[i] = token, pos
            batch.n_seq_id[i], batch.seq_id[i][0] = 1, seq
            batch.logits[i] = i in wanted
        batch.n_tokens = len(cells)

    def _run(self) -> None:
        status = self.api.llama_decode(self.ctx, self.batch)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _row(self, index: int) -> np.ndarray:
        pointer = self.api.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.vocab,))

    def _clear(self) -> None:
        self.api.llama_memory_clear(self.api.llama_get_memory(self.ctx), True)


def _silence(api) -> None:
    """Keep llama.cpp's load log off the worker's output (the bench reads JSON from it)."""
    import ctypes

    @ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
    def quiet(level, text, user_data):  # noqa: ARG001
        return None

    _silence.keep = quiet  # the callback must outlive this call
    api.llama_log_set(quiet, ctypes.c_void_p(0))


class ServedEngine:
    """`tuneloop serve`'s engine without HTTP: the lane (scheduler, runner, backend) the server
    builds for a variant folder, stepped here. The in-process side of the server-overhead
    ratio: the same prompt prefix cache, sampling and detokenization, no HTTP, no metrics."""

    MAX_BATCH_SIZE = 16
    """Also the bench's `tuneloop serve --max-batch-size`."""

    def __init__(self, folder: Path, threads: int) -> None:
        from tuneloop.optimize.artifacts import read_artifact
        from tuneloop.serve.lanes import ModelSpec
        from tuneloop.serve.loading import load_lane
        from tuneloop.serve.settings import Settings

        backend = read_artifact(Path(folder)).get("backend", "torch")
        spec = ModelSpec("bench", backend, Path(folder), threads=threads)
        self.lane = load_lane(spec, Settings(max_batch_size=self.MAX_BATCH_SIZE), not_loaded={})
        self.requests = 0

    def answer(self, prompt: list[int], max_tokens: int) -> int:
        """Tokens of one greedy answer, counted as the server's usage counts them."""
        from tuneloop.serve.jobs import new_job
        from tuneloop.serve.requests import GenerationRequest, SamplingParams

        self.requests += 1
        params = SamplingParams(max_tokens=max_tokens, temperature=0)
        request = GenerationRequest(f"r{self.requests}", "bench", tuple(prompt), params)
        tokenizer, scheduler = self.lane.tokenizer, self.lane.scheduler
        job = new_job(request, tokenizer, lambda event: None, lane="bench", now=time.monotonic())
        scheduler.add(job)
        while scheduler.has_work():
            scheduler.step()
        return sum(job.record.completion_tokens)


ENGINES = {
    "tuneloop": TuneloopEngine,
    "tuneloop-drafted": DraftedEngine,
    "tuneloop-served": ServedEngine,
    "transformers": TransformersEngine,
    "llama.cpp": LlamaCppEngine,
}
