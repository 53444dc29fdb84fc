"""Imported once by the local executor's fork server (``local.PRELOAD``): warms it up for every job,
and forgets the gateway's environment before it forks any sandbox (``walls.environment``).

Importing it anywhere else empties that process's environment too: only the fork server imports it
(the test suite's doctest collection leaves it out)."""

from executors.walls.environment import scrub
from executors.warmup import prepare_fork_server

scrub()
prepare_fork_server()
