"""The partner simulator: local HTTP(S) servers that answer like real partner APIs.

`profiles` decides each answer (pure), `tls` makes the certificates,
`servers` runs the sockets, `config` reads the TOML file (`load_partners`);
`deliverydash partners` (`deliverydash.commands.partners`) runs a set until
stopped. Start a set in-process with `PartnerSet` (async) or
`partners_in_thread` (`deliverydash.partner_simulator.servers`); see
docs/partners.md.

Nothing is imported here, so `deliverydash --help` does not load the servers.
"""
