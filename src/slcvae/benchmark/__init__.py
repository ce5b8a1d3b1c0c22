"""Speed benchmarks that ship with the package, so `slcvae bench` runs from an installed wheel.

`throughput` times slcvae's real training and generation paths against `baseline_cvae`, a straightforward PyTorch
CVAE of the same sizes; `timing` is the one timing rule every script in bench/ uses.
"""
