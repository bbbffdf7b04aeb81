"""The `plm-interp` subcommands, one module each (`add_parser(sub)` + `run(args)`); a new module here is a new
subcommand (see :func:`plm_app.cli.command_modules`)."""
