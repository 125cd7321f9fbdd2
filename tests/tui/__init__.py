"""The Textual app driven as a person would: Pilot, snapshots."""
