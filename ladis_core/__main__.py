from ladis_core.cli import main

raise SystemExit(main())
