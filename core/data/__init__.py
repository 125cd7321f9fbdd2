"""What evals and training both read: dataset files and their rows, templates, prompt versions and the
prompt an item gives, and the graders that score an answer. Below both, so neither imports the other."""
