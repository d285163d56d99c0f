"""`python -m bench {padding,throughput,dataprep,startup,gpu,all} [--smoke] [--json FILE]`: run the benchmarks.

Every benchmark prints its numbers and the ratio measured side by side in the same run; `--json` also saves them.
`--smoke` runs tiny sizes (seconds, for CI); without it, the sizes documented in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any

# (full size, smoke size) of each CPU benchmark's knobs
SIZES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "padding": ({"n": 1000, "max_length": 16384, "batch_size": 8}, {"n": 64, "max_length": 2048, "scale": 0.1}),
    "throughput": ({"n": 32, "scale": 0.1}, {"n": 8, "scale": 0.03}),
    "dataprep": ({"n": 1000, "repeats": 3}, {"n": 40, "scale": 0.1, "repeats": 1}),
    "startup": ({"repeats": 3}, {"repeats": 1}),
}


def _run_one(name: str, smoke: bool, args: argparse.Namespace) -> dict[str, Any]:
    from bench import workdir

    kwargs = dict(SIZES[name][1 if smoke else 0]) if name in SIZES else {}
    if name == "padding":
        from bench import padding as mod

        result = mod.run(**kwargs)
    elif name == "throughput":
        from bench import throughput as mod

        result = mod.run(workdir.scratch("throughput"), overrides=args.override, **kwargs)
    elif name == "dataprep":
        from bench import dataprep as mod

        result = mod.run(workdir.scratch("dataprep"), **kwargs)
    elif name == "startup":
        from bench import startup as mod

        result = mod.run(**kwargs)
    else:
        from bench import gpu as mod

        result = mod.run(mod.options_from_args(args, smoke))
    print(f"\n## {name}{' (smoke)' if smoke else ''}")
    print("\n".join(mod.report(result)))
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen benchmarks one after the other."""
    from bench import gpu

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=["padding", "throughput", "dataprep", "startup", "gpu", "all"])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI); no meaningful timings")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="throughput: extra train.py argument for our run, e.g. --override=--gradient_checkpointing "
        "--override=false (repeatable)",
    )
    gpu.add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    names = ["padding", "throughput", "dataprep", "startup"] if args.benchmark == "all" else [args.benchmark]
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    print(f"# {command}")
    results = {"command": command, **{name: _run_one(name, args.smoke, args) for name in names}}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
