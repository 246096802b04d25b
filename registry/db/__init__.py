"""Metadata in SQL: models, engine set-up and the queries the domain needs."""
