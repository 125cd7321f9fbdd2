"""tunelab's Textual front end. It never imports torch: model work happens in child processes."""
