from reliquary_sdk.cli.app import main

main()
