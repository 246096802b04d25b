"""Access control: passwords, grants and scopes, tokens, and deciding each request."""
