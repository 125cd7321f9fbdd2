"""Theme files shipped with tunelab (read with importlib.resources, so they work from a wheel)."""
