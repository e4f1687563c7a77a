from distill_hetero.cli import main

raise SystemExit(main())
