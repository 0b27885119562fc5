"""The template catalog: published template versions, their signatures, reviews and moderation.

``model`` (entries, reviews, metadata validation, checksums), ``ports`` (the store and the
installer), ``memory`` and ``sqlite`` (stores), ``signing`` (the server's Ed25519 key),
``service`` (publish, search, review, moderate, install: the rules the API applies).
"""
