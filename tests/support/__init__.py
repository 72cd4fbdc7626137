"""Shared test helpers: factories of result objects, thread settings, the dashboard
world and browser helpers. Import as ``from tests.support.factories import make_job``."""
