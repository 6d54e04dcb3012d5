"""Data only: the palette, UI colours, colour maps and icons that ``desktop.resources`` loads.

A package (an empty one) so that ``pip install .`` ships these files as package data beside
``desktop``; nothing imports it.
"""
