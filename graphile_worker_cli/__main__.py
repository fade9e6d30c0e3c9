from graphile_worker_cli.cli.app import main

main()
