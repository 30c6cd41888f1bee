"""The `tuneloop` command: a table of subcommands, each a plain function.

Help on every level is generated from the functions' signatures and docstrings
(see `tuneloop.cli_builder`). Expected failures (`TuneloopError`) print one line and exit
non-zero; anything else prints one line too, unless `--debug` asks for the traceback.
"""

from __future__ import annotations

import logging
import os
import sys

from tuneloop import __version__
from tuneloop.bench.cli import bench
from tuneloop.cli_builder import Group, build_parser, call_parsed
from tuneloop.core_commands import demo_path
from tuneloop.demo_run import demo
from tuneloop.doctor import doctor
from tuneloop.errors import TuneloopError
from tuneloop.optimize import cli as optimize
from tuneloop.serve import cli as serve
from tuneloop.serve.snapshot import monitor_snapshot
from tuneloop.train import cli as train

COMMANDS = {
    "data": Group(
        "Check, clean and split training data.",
        {"check": train.data_check, "prepare": train.data_prepare, "demo-path": demo_path},
    ),
    "train": train.train,
    "eval": train.evaluate,
    "optimize": Group(
        "Merge, export, quantize and verify an adapter behind a quality gate.",
        {
            "merge": optimize.merge,
            "export": optimize.export,
            "quantize": optimize.quantize,
            "verify": optimize.verify,
            "draft": optimize.draft,
            "all": optimize.all_variants,
        },
    ),
    "serve": serve.serve,
    "monitor": Group(
        "Drift checks and dashboard snapshots.",
        {"drift": serve.monitor_drift, "snapshot": monitor_snapshot},
    ),
    "bench": bench,
    "doctor": doctor,
    "demo": demo,
}

DESCRIPTION = """\
tuneloop takes an open language model from a curated dataset to a monitored endpoint:

  tuneloop data check|prepare   validate, clean, deduplicate and split a data file
  tuneloop train                train a LoRA-family adapter (+ drift reference profile)
  tuneloop eval                 compare base model and adapter on a test split
  tuneloop optimize ...         merge, export to ONNX, quantize, verify (quality gate)
  tuneloop serve                OpenAI-compatible server with Prometheus metrics
  tuneloop doctor               show what is installed and what is missing

With no --base, every command uses the embedded default model smollm2-135m-instruct.
Start with `tuneloop demo`, or `tuneloop <command> --help`."""


def make_parser():
    parser = build_parser("tuneloop", DESCRIPTION, COMMANDS)
    parser.add_argument("--version", action="version", version=f"tuneloop {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug)
    if not hasattr(args, "_tuneloop_function"):
        parser.print_help()
        return 2
    try:
        result = call_parsed(args)
    except TuneloopError as exc:
        if args.debug:
            raise
        print(f"tuneloop: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tuneloop: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI boundary: one line for the user, traceback on request
        if args.debug:
            raise
        print(
            f"tuneloop: error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return result if isinstance(result, int) else 0


def _configure_logging(debug: bool) -> None:
    level = logging.DEBUG if debug else os.environ.get("TUNELOOP_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    if not debug:
        # Libraries chat at INFO (download bars, "legacy behaviour" notices); keep ours only.
        for noisy in ("transformers", "huggingface_hub", "urllib3", "filelock", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
