"""LoRA training runs: one child process per run, writing only into its run folder.

`config` and `runs` are stdlib-only (the TUI imports them to start, watch and stop runs);
`data` and `loop` need torch and run only inside the child.
"""
