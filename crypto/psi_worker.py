"""A worker process of ``crypto.psi.Blinders``: group operations for its parent, over a pipe.

Started by its parent only, as ``python -m crypto.psi_worker``; it reads requests on its standard
input and answers on its standard output (``crypto.psi.serve``) until its input ends.
"""

from __future__ import annotations

import sys

from crypto.psi import serve

if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
