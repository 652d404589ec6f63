"""darkseg: semantic segmentation in low light and at night when pixel labels are scarce."""

__version__ = "0.1.0"
