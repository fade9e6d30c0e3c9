"""``python -m bench`` (the race), ``python -m bench scale`` (cost curves),
``python -m bench startup`` (command start-up) and ``python -m bench history_charts`` (the
dashboard's charts on a big history): see bench/README.md."""

import sys

if sys.argv[1:2] == ["scale"]:
    from bench.scale import main as scale_main

    raise SystemExit(scale_main(sys.argv[2:]))

if sys.argv[1:2] == ["startup"]:
    from bench.startup import main as startup_main

    raise SystemExit(startup_main(sys.argv[2:]))

if sys.argv[1:2] == ["history_charts"]:
    from bench.history_charts import main as history_charts_main

    raise SystemExit(history_charts_main(sys.argv[2:]))

from bench.run import main

raise SystemExit(main())
