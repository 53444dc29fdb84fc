"""The ``sandbox`` command line: one module per area, one shared helper, the demo and its data.

``main`` builds the application and is the console script's entry point; ``common`` holds what every
command that talks to a gateway shares (address, token, errors, id prefixes) and ``output`` how results
are shown (tables, ``--json``, ``--csv``, ``--out``). Modules import the gateway, the client and pandas
inside the commands that need them, so ``sandbox --help`` starts quickly.
"""
