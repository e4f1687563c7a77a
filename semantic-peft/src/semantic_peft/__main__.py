from semantic_peft.cli import main

raise SystemExit(main())
