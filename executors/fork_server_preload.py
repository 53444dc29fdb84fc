"""Imported once by the local executor's fork server (``local.PRELOAD``): warms it up for every job."""

from executors.warmup import prepare_fork_server

prepare_fork_server()
