"""Interoperability with other tools' formats (Rally task files in, Rally task results out).

Pure translation: values in, values out; the command (cli/interop.py) reads and writes files.
"""
