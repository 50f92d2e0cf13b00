"""The collapse study: the rho sweep over configurations and seeds, its summary and its report."""
