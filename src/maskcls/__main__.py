"""`python -m maskcls`: the same as the `maskcls` command (torchrun starts the processes of a DDP run this way)."""

from maskcls.cli import main

main()
