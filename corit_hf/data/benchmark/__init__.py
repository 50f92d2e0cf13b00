"""The built-in offline forensic benchmark: forgery families, bundled photos, degradations, the build and export."""
