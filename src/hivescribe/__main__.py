from hivescribe.cli.main import main

main()
