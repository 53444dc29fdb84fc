"""Business logic between the routes and the store; each service owns one resource."""
