from tollway.cli.main import main

raise SystemExit(main())
