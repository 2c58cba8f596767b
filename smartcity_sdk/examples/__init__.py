"""Runnable examples of the SDK against a running platform (``smartcity up``): see README.md."""
