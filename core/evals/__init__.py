"""Evaluation: datasets, templates, prompt versions, graders, the generation cache and the eval runner."""
