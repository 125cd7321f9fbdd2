"""The command line: a front end over the same workbench service as the Textual app."""
