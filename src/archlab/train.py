"""`python -m archlab.train`: the same as `archlab-train` (see `archlab.cli.train`)."""

from archlab.cli.train import main

if __name__ == "__main__":
    main()
