"""Unit tests: one engine module at a time, no subprocess, no model unless shared."""
