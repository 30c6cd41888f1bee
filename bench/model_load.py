"""Time to load the embedded model: tuneloop's converted cache vs transformers reading the GGUF.

Each measurement runs in a fresh Python process (nothing warm in memory but the OS page cache),
three times, and reports the median. Run: `python -m tuneloop.bench.model_load`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

TUNELOOP = """
import time; t0 = time.perf_counter()
from tuneloop.base_model import load_model, load_tokenizer, resolve_base
t1 = time.perf_counter()
base = resolve_base(); load_tokenizer(base); load_model(base)
t2 = time.perf_counter()
print(t2 - t0, t2 - t1)
"""

GGUF_DIRECT = """
import time; t0 = time.perf_counter()
from transformers import AutoModelForCausalLM, AutoTokenizer
from tuneloop.embedded import EMBEDDED_MODELS, find_gguf
t1 = time.perf_counter()
gguf = find_gguf(EMBEDDED_MODELS["smollm2-135m-instruct"])
AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
t2 = time.perf_counter()
print(t2 - t0, t2 - t1)
"""


def measure(code: str, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        runs.append([float(x) for x in out.stdout.split()])
    return {
        "with_imports_s": statistics.median(r[0] for r in runs),
        "load_only_s": statistics.median(r[1] for r in runs),
    }


def main(repeats: int = 3) -> dict:
    measure(TUNELOOP, 1)  # make sure the cache exists before timing it
    result = {
        "tuneloop_cached": measure(TUNELOOP, repeats),
        "transformers_gguf": measure(GGUF_DIRECT, repeats),
    }
    result["speedup_load_only"] = round(
        result["transformers_gguf"]["load_only_s"] / result["tuneloop_cached"]["load_only_s"], 1
    )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
