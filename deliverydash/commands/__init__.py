"""One module per subcommand of `deliverydash`: `configure(parser)` adds its options, `run(args)` runs it."""
