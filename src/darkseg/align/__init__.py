"""Day→night image alignment (coarse homography + fine DIS flow), its cache, preview and torch warping."""
