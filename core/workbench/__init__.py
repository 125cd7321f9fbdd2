"""The workbench service: the use cases both front ends call."""
