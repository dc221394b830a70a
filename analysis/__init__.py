"""polyinverse: reverse-engineering the recipe of a BA/AIBN radical polymerization from its MMD."""

__version__ = "0.1.0"
