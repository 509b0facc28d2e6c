"""How the engine's requests reach destinations: the HTTP clients behind one seam."""
