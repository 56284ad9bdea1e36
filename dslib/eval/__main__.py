"""``python -m dslib.eval CHECKPOINT``: HumanEval and single-line infilling of a checkpoint folder."""

from dslib.eval.report import main

raise SystemExit(main())
