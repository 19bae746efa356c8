"""Showcase adapters used by snakepit's tests and examples.

``snakepit_showcase.adapter.ShowcaseAdapter`` (process profile) and
``snakepit_showcase.adapter.ThreadedShowcaseAdapter`` (thread profile);
``broken`` and ``bad_init`` fail to import on purpose.
"""
