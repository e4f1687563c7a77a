from lemoe.cli import main

raise SystemExit(main())
