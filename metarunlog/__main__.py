from metarunlog.main import main

raise SystemExit(main())
