"""One widget per module; each pane owns its own layout and state."""
