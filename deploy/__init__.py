"""Bundles, flashing to Jetsons over SSH, and fleet rollouts. Built in a later issue."""
