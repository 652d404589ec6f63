"""Training methods, one module each: how a method's losses are built from its networks and a batch.

``darkseg.methods.catalog`` imports every method so that ``METHODS`` knows them all.
"""
