"""``darkseg reproduce``: a paper's tables trained, evaluated and reported from one command."""
