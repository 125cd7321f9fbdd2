"""Whole paths: the CLI as a subprocess, the real model, training runs, packaging, tmux."""
