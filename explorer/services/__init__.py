"""Services: start-up (every card, table and prior loaded once: resources), model workers, and the use cases the
page and the API share, as plain functions returning dataclasses."""
