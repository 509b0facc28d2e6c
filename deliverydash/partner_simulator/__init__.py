"""The partner simulator: local HTTP(S) servers that answer like real partner APIs.

`profiles` decides each answer (pure), `tls` makes the certificates,
`servers` runs the sockets, `config` reads the TOML file, `cli` is
`deliverydash partners`. Start a set in-process with `PartnerSet` (async)
or `partners_in_thread` (`deliverydash.partner_simulator.servers`); see docs/partners.md.

Nothing is imported here, so `deliverydash --help`, which builds the
subcommand's parser from `cli`, does not load the servers.
"""
