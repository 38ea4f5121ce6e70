"""asv benchmark suite of odebench (see asv.conf.json, benchmark_dir)."""
