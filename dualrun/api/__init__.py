"""The HTTP API (`dualrun serve`): the CLI's renewal operations over HTTP, with OpenAPI."""
