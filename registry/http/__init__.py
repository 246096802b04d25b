"""HTTP routes of the registry API: parse and validate a request, call the domain, reply."""
