"""How the engine's requests reach destinations: the HTTP clients behind one seam."""

#: The clients `[engine] http_client` may name: the engine's own HTTP/1.1 client, or aiohttp.
CLIENTS = ("builtin", "aiohttp")
