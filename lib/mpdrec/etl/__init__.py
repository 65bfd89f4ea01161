"""Spark ETL: flattening MPD JSON to Parquet (later: indexing, splits, negative sampling)."""
