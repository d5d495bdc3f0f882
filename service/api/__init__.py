"""HTTP layer: dependencies, problem+json handlers and one router per resource."""
