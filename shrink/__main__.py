from shrink.cli import main

raise SystemExit(main())
