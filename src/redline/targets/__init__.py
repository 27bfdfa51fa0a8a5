"""Composition: what a command needs assembled before a use case runs.

Starting the embedded target and splitting the CPUs between it and the generator, and
building a storm driver from the lab's state, live here so that a library caller gets
them without the CLI; the core (load, storm, analysis) never imports this package.
"""
