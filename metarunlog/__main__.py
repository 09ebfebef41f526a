from metarunlog._entry import run

raise SystemExit(run())
