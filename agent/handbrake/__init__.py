"""Everything about HandBrakeCLI: its argv, its progress output, running and probing it."""
