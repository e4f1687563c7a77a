from infodiffusion.cli import main

raise SystemExit(main())
