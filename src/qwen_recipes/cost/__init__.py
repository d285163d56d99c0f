"""Cost truth: estimate memory, time and dollars before a run, meter them during it, report them after."""
