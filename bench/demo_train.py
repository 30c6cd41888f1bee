"""The demo's promise, measured: `support-triage` trained with default settings, timed, scored.

1) `tuneloop data prepare` the demo set (label `category`), unless already prepared in OUT
2) `tuneloop train` with default settings in a fresh process: wall-clock time, steps, tokens/s
3) `tuneloop eval` on the held-out test split: category accuracy and valid JSON, base vs adapter
The machine's load average is recorded before and after, since other work on the same cores
slows training down.

Run: `python -m tuneloop.bench.demo_train [--base B] [--out DIR]`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tuneloop.demo import DEMO_DATA

TIME_GOAL_S = 600
ACCURACY_GOAL, JSON_GOAL = 0.90, 0.98


def tuneloop(*args: str) -> float:
    """Run a tuneloop command in a fresh process; return its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tuneloop", *args], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=Path("bench-results/demo-train"))
    args = parser.parse_args(argv)
    data, adapter = args.out / "data", args.out / "support-triage"
    if not (data / "test.jsonl").is_file():
        tuneloop("data", "prepare", str(DEMO_DATA), "--out", str(data), "--base", args.base,
                 "--label-field", "category")  # fmt: skip
    load_before = os.getloadavg()
    splits = ["--data", str(data / "train.jsonl"), "--val", str(data / "val.jsonl")]
    train_s = tuneloop("train", *splits, "--out", str(adapter), "--base", args.base)
    load_after = os.getloadavg()
    tuneloop("eval", "--adapter", str(adapter), "--data", str(data / "test.jsonl"))
    config = json.loads((adapter / "training_config.json").read_text())
    scores = json.loads((adapter / "eval" / "eval.json").read_text())["results"]
    result = {
        "base": args.base,
        "train_wall_s": round(train_s, 1),
        "train_loop_s": round(config["summary"]["train_seconds"], 1),
        "steps": config["summary"]["steps"],
        "tokens_per_s": round(config["summary"]["tokens_per_second"], 1),
        "epochs": config["resolved"]["epochs"],
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "test_examples": scores["adapter"]["examples"],
        "accuracy": {"base": scores["base"]["accuracy"], "adapter": scores["adapter"]["accuracy"]},
        "valid_json": {
            "base": scores["base"]["valid_json"],
            "adapter": scores["adapter"]["valid_json"],
        },
        "goals": {
            "train_wall_s <= 600": train_s <= TIME_GOAL_S,
            "accuracy >= 0.90": scores["adapter"]["accuracy"] >= ACCURACY_GOAL,
            "valid_json >= 0.98": scores["adapter"]["valid_json"] >= JSON_GOAL,
        },
    }
    (args.out / "demo_train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
