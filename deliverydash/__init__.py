"""The `deliverydash` command and what only it needs: the subcommands, the demos, the partner simulator."""
