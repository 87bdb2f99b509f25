from raysearch.cli import main

raise SystemExit(main())
