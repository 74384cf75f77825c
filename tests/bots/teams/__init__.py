"""Tests of the Teams transport."""
