"""``python -m bench`` (the race) and ``python -m bench scale`` (cost curves): see
bench/README.md."""

import sys

if sys.argv[1:2] == ["scale"]:
    from bench.scale import main as scale_main

    raise SystemExit(scale_main(sys.argv[2:]))

from bench.run import main

raise SystemExit(main())
