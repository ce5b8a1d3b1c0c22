"""Training and generation throughput against a straightforward baseline: `slcvae bench`, as a script.

    python bench/throughput.py [--json] [--threads N] [--repeats R]

The benchmark ships in the package (slcvae/benchmark/throughput.py) so that `slcvae bench` runs from a wheel.
"""

from slcvae.benchmark.throughput import main

if __name__ == "__main__":
    main()
