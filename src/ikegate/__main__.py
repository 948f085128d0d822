from ikegate.cli import main

raise SystemExit(main())
