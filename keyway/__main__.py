from keyway.cli import main

raise SystemExit(main())
