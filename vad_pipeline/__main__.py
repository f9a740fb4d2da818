from vad_pipeline.cli import main

raise SystemExit(main())
