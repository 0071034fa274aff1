"""The `dualrun` command line."""
