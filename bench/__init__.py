"""qwen-recipes benchmarks: padding waste, CPU throughput, data preparation, start-up, GPU speed and memory.

Run `python -m bench --help`; see bench/README.md.
"""
