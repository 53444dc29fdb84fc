"""``python -m sandbox_api.cli``: the same as the ``sandbox`` console script."""

from sandbox_api.cli.main import main

if __name__ == "__main__":
    main()
