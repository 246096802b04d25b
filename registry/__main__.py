"""`python -m registry` runs the `tollgate` command."""

from registry.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
