"""The HTTP routes of the engine, one module per area; `delivery.app` includes them."""
