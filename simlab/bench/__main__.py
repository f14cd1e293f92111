"""``python -m simlab.bench``: the engines' benchmark (:mod:`simlab.bench.engines`)."""

from simlab.bench.engines import main

if __name__ == "__main__":
    main()
