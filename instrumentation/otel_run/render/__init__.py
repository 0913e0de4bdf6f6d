"""Terminal views of stored traces (:mod:`._waterfall`)."""
