"""redline: find the highest load a target sustains without degrading."""

__version__ = "0.1.0"
