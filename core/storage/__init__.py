"""Storage: atomic writes, locks, small metadata stores, paths and the user's config file."""
