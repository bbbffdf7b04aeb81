"""``plm-interp`` subcommands that belong to the application layer."""
