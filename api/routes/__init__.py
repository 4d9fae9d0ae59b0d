"""The endpoints, one module per resource; each module's ``routes`` is its :class:`api.routing.RouteTable`."""
