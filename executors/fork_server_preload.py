"""Imported once by the local executor's fork server (``local.PRELOAD``): warms it up for every job,
and forgets the gateway's environment before it forks any sandbox (``walls.environment``)."""

from executors.walls.environment import scrub
from executors.warmup import prepare_fork_server

scrub()
prepare_fork_server()
