"""Registry domain logic: references, manifests, uploads and repository content rules."""
