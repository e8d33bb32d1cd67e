"""Building blocks that know nothing about schemas or configs."""
