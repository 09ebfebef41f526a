"""One module per subcommand: HELP, add_arguments(parser), cli(args, project) -> int.

`cli` turns the parsed arguments into keyword arguments of a typed function that does the
work and returns something a test can check; printing stays in `cli`.
"""
