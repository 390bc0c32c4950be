"""Token holders: the reorg tests' handler (deletes at zero, a live ``find``) and its oracle."""
