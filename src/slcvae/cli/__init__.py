"""The `slcvae` command line (typer)."""
