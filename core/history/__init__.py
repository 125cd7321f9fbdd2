"""History: the sharded record store and its index, queries, records, import and export."""
