"""`make bench` (`python -m bench [NAME ...]`): each figure is a ratio against a baseline measured in
the same run, repeated (median of >= 5, spread = min..max), because absolute times on a shared
machine are noise. Results go to `bench/results/latest.json` and a Markdown table beside it."""
