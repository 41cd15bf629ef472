from shrink.cli.main import main

raise SystemExit(main())
