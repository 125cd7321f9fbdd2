"""Prompt optimization: candidate prompt versions proposed by strategies (demonstrations, instructions,
reflection on failures) and searched by successive halving on the dev rows, every candidate a stored version
and every scoring an eval, so the verdict counts the search as the selection it is."""
