"""The HTTP routes of the engine, one module per area; `delivery.api.main` includes them."""
